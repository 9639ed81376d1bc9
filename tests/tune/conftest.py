import numpy as np
import pytest

from nnunet_ext.synthetic import make_case, make_cv_folders, write_prediction_folder


@pytest.fixture(scope="session")
def cv(tmp_path_factory):
    """CV folders of two models: model 0 good at label 1, model 1 at label 2."""
    root = tmp_path_factory.mktemp("cv")
    return make_cv_folders(root, good_labels=((1,), (2,)), num_cases=6, shape=(10, 36, 36))


def forgetful_member(rng, reference, *, good, forgets, p_true=0.28):
    """Softmax probabilities that are right but unsure (``p_true``) on ``good`` labels and
    confidently background (0.999) on the ``forgets`` labels: it never predicts them."""
    num_classes = 4
    p = np.zeros((num_classes, *reference.shape), dtype=np.float64)
    p[0][reference == 0] = 0.97
    p[1:, reference == 0] = 0.01
    rest = (1 - p_true) / (num_classes - 1)
    for c in good:
        at = reference == c
        p[:, at] = rest
        p[c, at] = p_true
    for c in forgets:
        at = reference == c
        p[:, at] = 0.001 / (num_classes - 1)
        p[0, at] = 0.999
    p *= 1 + 0.02 * rng.random(p.shape)  # a little texture, argmax unchanged
    return (p / p.sum(axis=0)).astype(np.float32)


@pytest.fixture(scope="session")
def forgot_rv(tmp_path_factory):
    """Model "3d" never predicts RV (label 3) and is unsure on 1, 2; model "2d" is unsure on
    RV and confidently background on 1, 2. No weighting (with scales up to 3) keeps both."""
    root = tmp_path_factory.mktemp("forgot_rv")
    rng = np.random.default_rng(7)
    references, members = {}, ({}, {})
    for i in range(8):
        _, ref = make_case(rng, shape=(8, 32, 32), with_small_label=i % 4 != 3)
        case = f"case_{i:03d}"
        references[case] = ref
        members[0][case] = forgetful_member(rng, ref, good=(1, 2), forgets=(3,))
        members[1][case] = forgetful_member(rng, ref, good=(3,), forgets=(1, 2))
    dirs = [
        write_prediction_folder(root / name, probs)
        for name, probs in zip(("3d", "2d"), members, strict=True)
    ]
    ref_dir = root / "gt"
    ref_dir.mkdir()
    import SimpleITK as sitk  # noqa: N813

    for case, ref in references.items():
        image = sitk.GetImageFromArray(ref)
        image.SetSpacing((1.0, 1.0, 2.5))
        sitk.WriteImage(image, str(ref_dir / f"{case}.nii.gz"), True)
    (root / "dataset.json").write_text((dirs[0] / "dataset.json").read_text())
    return dirs, ref_dir, members
