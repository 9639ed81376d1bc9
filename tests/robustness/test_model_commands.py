"""The fault matrix of the commands that need trained models: predict, validate, export.

The inputs are the session's real tiny model (``trained_fold``: CustomEpochs 3d_fullres, fold 0,
see ``tests/conftest.py``), copied with two test images, a predict spec and a bundle exported
from it into one pristine folder per module. Each case copies that folder, damages one input,
runs the command in-process and asserts what ``test_faults.py`` asserts for the torch-free
commands: exit 1 with one ``error:`` line naming the damaged file or key, no traceback, no
internal error, no temporary or lock file anywhere, the inputs byte-identical afterwards and
nothing written. ``validate`` writes into the fold folder it validates, so for it "nothing
written" is the unchanged input tree. One successful run per command is the baseline: on the
pristine inputs each command succeeds and writes complete outputs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from nnunet_workspace import DATASET_NAME, NnunetWorkspace

from ._data import (
    Command,
    Result,
    check_common,
    check_failure,
    copy_inputs,
    error_lines,
    leftovers,
    run_command,
    tree_hashes,
)
from .test_faults import (
    JUNK,
    TEXT,
    Fault,
    Mutation,
    _drop,
    _set,
    content,
    edit_json,
    label_image,
    remove,
    truncate,
    zip_edit,
)

pytestmark = [pytest.mark.nnunet, pytest.mark.slow]

#: The model folder, relative to the input root (as under ``$nnUNet_results``).
MODEL = f"{DATASET_NAME}/CustomEpochs__nnUNetPlans__3d_fullres"
FOLD = f"{MODEL}/fold_0"
CHECKPOINT = f"{FOLD}/checkpoint_final.pth"
#: Two test images of the workspace; ``README.txt`` beside them must be ignored.
CASES = ("heart_006", "heart_007")
BAD_IMAGE = "images/heart_007_0000.nii.gz"
MANIFEST = f"{DATASET_NAME}/nnunet_ext_bundle/manifest.json"
BUNDLE_PLANS = f"{DATASET_NAME}/nnUNetTrainer__nnUNetPlans__3d_fullres/plans.json"


def _p(path: Path) -> str:
    return str(path)


def _predict_runtime() -> list[str]:
    return ["--device", "cpu", "--disable-tta"]


def _commands(preprocessed: Path) -> dict[str, Command]:
    return {
        c.name: c
        for c in (
            Command(
                "predict",
                lambda r, o: [
                    *("predict", "-i", _p(r / "images"), "-o", _p(o / "pred")),
                    *("-m", _p(r / MODEL), "-f", "0", *_predict_runtime()),
                ],
                case_folder="pred",
            ),
            Command(
                "predict-spec",
                lambda r, o: [
                    *("predict", "-i", _p(r / "images"), "-o", _p(o / "pred")),
                    *("--spec", _p(r / "spec.json"), *_predict_runtime()),
                ],
                case_folder="pred",
            ),
            Command(
                "bundle",
                lambda r, o: [
                    *("predict", "-i", _p(r / "images"), "-o", _p(o / "pred")),
                    *("--bundle", _p(r / "bundle.zip"), *_predict_runtime()),
                ],
                case_folder="pred",
            ),
            Command(
                "export",
                lambda r, o: ["export", "-m", _p(r / MODEL), "-f", "0", "-o", _p(o / "b.zip")],
                files=("b.zip",),
            ),
            Command("check", lambda r, o: ["export", "--check", _p(r / "bundle.zip")]),
            Command(
                "validate",
                lambda r, o: [
                    *("validate", "-i", _p(r / FOLD), "--checkpoint", "checkpoint_final.pth"),
                    *("--device", "cpu"),
                ],
                env={"nnUNet_preprocessed": str(preprocessed)},
            ),
        )
    }


def _copy_model(source: Path, target: Path) -> None:
    """The model folder with only fold 0 (later fixtures may add folds to the shared one)."""
    target.mkdir(parents=True)
    for name in ("dataset.json", "plans.json", "dataset_fingerprint.json"):
        shutil.copyfile(source / name, target / name)
    shutil.copytree(source / "fold_0", target / "fold_0")


@pytest.fixture(scope="module")
def pristine(
    workspace: NnunetWorkspace, trained_fold: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Model folder, images, spec and bundle (exported here once, in-process)."""
    root = tmp_path_factory.mktemp("model_commands") / "inputs"
    _copy_model(trained_fold.parent, root / MODEL)
    (root / "images").mkdir()
    for case in CASES:
        image = f"{case}_0000.nii.gz"
        shutil.copyfile(workspace.raw / DATASET_NAME / "imagesTs" / image, root / "images" / image)
    (root / "images" / "README.txt").write_text("test images of the synthetic heart dataset\n")
    spec = {"schema_version": 1, "members": [{"model": MODEL, "folds": [0], "weight": 1.0}]}
    (root / "spec.json").write_text(json.dumps(spec, indent=2))
    export = _commands(workspace.preprocessed)["export"]
    result = run_command(export, root, root)
    assert result.code == 0, result.out + result.err
    (root / "b.zip").rename(root / "bundle.zip")
    return root


@pytest.fixture(scope="module")
def commands(workspace: NnunetWorkspace) -> dict[str, Command]:
    return _commands(workspace.preprocessed)


# --- the baseline ---------------------------------------------------------------------------


def _check_labels(folder: Path, root: Path) -> None:
    """One uint8 label file per case, of its image's shape and geometry."""
    import SimpleITK as sitk  # noqa: N813

    assert sorted(p.name for p in folder.glob("*.nii.gz")) == [f"{c}.nii.gz" for c in CASES]
    for case in CASES:
        labels = sitk.ReadImage(str(folder / f"{case}.nii.gz"))
        image = sitk.ReadImage(str(root / "images" / f"{case}_0000.nii.gz"))
        assert labels.GetSize() == image.GetSize()
        assert labels.GetSpacing() == pytest.approx(image.GetSpacing())
        array = sitk.GetArrayFromImage(labels)
        assert array.dtype == np.uint8
        assert set(np.unique(array)) <= {0, 1, 2, 3}


@pytest.mark.parametrize("name", ["predict", "predict-spec", "bundle", "export", "check"])
def test_valid_inputs_succeed(
    pristine: Path, commands: dict[str, Command], tmp_path: Path, name: str
) -> None:
    root, out = copy_inputs(pristine, tmp_path)
    before = tree_hashes(root)
    result = run_command(commands[name], root, out)
    assert result.code == 0, result.out + result.err
    check_common(result, tmp_path)
    assert tree_hashes(root) == before
    summary = json.loads(result.out.splitlines()[-1])
    if name == "check":
        assert summary["ok"] is True
    elif name == "export":
        check = run_command(
            dataclasses.replace(
                commands["check"], argv=lambda r, o: ["export", "--check", _p(out / "b.zip")]
            ),
            root,
            out,
        )
        assert check.code == 0, check.err
    else:
        assert sorted(summary["written"]) == list(CASES)
        _check_labels(out / "pred", root)


def test_validate_succeeds_without_touching_nnunets_validation(
    pristine: Path, commands: dict[str, Command], tmp_path: Path
) -> None:
    """The fold's own ``validation/``, logs and checkpoints stay byte-identical."""
    root, out = copy_inputs(pristine, tmp_path)
    before = tree_hashes(root)
    result = run_command(commands["validate"], root, out)
    assert result.code == 0, result.out + result.err
    check_common(result, tmp_path)
    written = root / FOLD / "validation_checkpoint_final"
    after = tree_hashes(root)
    prefix = str(written.relative_to(root))
    assert {k: v for k, v in after.items() if not k.startswith(prefix)} == before
    assert (written / "summary.json").is_file()
    assert "checkpoint_final" in result.out
    assert "mean" in result.out
    assert list(out.iterdir()) == []


# --- the matrix -----------------------------------------------------------------------------


def rmtree(path: Path) -> None:
    shutil.rmtree(path)


def rename_to(name: str) -> Mutation:
    def apply(path: Path) -> None:
        path.rename(path.parent / name)

    return apply


def add_file(name: str, data: bytes) -> Mutation:
    def apply(path: Path) -> None:
        (path.parent / name).write_bytes(data)

    return apply


def image_4d(path: Path) -> None:
    """Two volumes of the image's size joined into one 4-D image."""
    import SimpleITK as sitk  # noqa: N813

    volume = sitk.ReadImage(str(path))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(path), True)


def zip_member(name: str, change: Callable[[bytes], bytes]) -> Mutation:
    return zip_edit(lambda m: [(n, change(d) if n == name else d) for n, d in m.items()])


def _manifest_with(key: str, value: object) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        return json.dumps({**json.loads(data), key: value}).encode()

    return change


def edit_checkpoint(change: Callable[[dict], object]) -> Mutation:
    """Load the checkpoint with torch, change it, save it again: a complete, valid zip."""

    def apply(path: Path) -> None:
        import torch

        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        torch.save(change(checkpoint), path)

    return apply


def _without(key: str) -> Callable[[dict], object]:
    return lambda checkpoint: {k: v for k, v in checkpoint.items() if k != key}


def _configuration(value: object) -> Callable[[dict], object]:
    def change(checkpoint: dict) -> object:
        checkpoint["init_args"] = {**checkpoint["init_args"], "configuration": value}
        return checkpoint

    return change


def _patch_size(value: object) -> Callable[[object], object]:
    def change(plans: object) -> object:
        assert isinstance(plans, dict)
        configuration = {**plans["configurations"]["3d_fullres"], "patch_size": value}
        return {**plans, "configurations": {**plans["configurations"], "3d_fullres": configuration}}

    return change


MODEL_READERS = ("predict", "predict-spec", "export", "validate")
IMAGE_READERS = ("predict", "predict-spec", "bundle")
NOT_JSON = b"these are my notes, not JSON {\n"

FAULTS: list[Fault] = [
    # checkpoints
    *[
        Fault(f"checkpoint-{mid}", MODEL_READERS, CHECKPOINT, m, ("checkpoint_final.pth",))
        for mid, m in [
            ("truncate-50", truncate(0.5)),
            ("junk", content(JUNK)),
            ("empty", content(b"")),
            ("missing", remove),
        ]
    ],
    # complete PyTorch zips that are not what nnUNetv2_train writes
    *[
        Fault(f"checkpoint-{mid}", MODEL_READERS, CHECKPOINT, edit_checkpoint(change), names)
        for mid, change, names in [
            (
                "another-programs",
                lambda c: {"state_dict": c["network_weights"], "epoch": 3},
                ("checkpoint_final.pth", "network_weights"),
            ),
            ("a-list", lambda c: [c["network_weights"]], ("checkpoint_final.pth", "dict")),
            ("no-weights", _without("network_weights"), ("network_weights",)),
            ("empty-weights", lambda c: {**c, "network_weights": {}}, ("network_weights",)),
            ("no-trainer-name", _without("trainer_name"), ("trainer_name",)),
            ("no-init-args", _without("init_args"), ("init_args",)),
            ("configuration-a-number", _configuration(3), ("init_args.configuration",)),
        ]
    ],
    # plans.json and dataset.json of the model folder
    *[
        Fault(f"plans-{mid}", MODEL_READERS, f"{MODEL}/plans.json", m, names)
        for mid, m, names in [
            ("truncated", truncate(0.5), ("plans.json",)),
            ("not-json", content(NOT_JSON), ("plans.json",)),
            ("a-list", content(b"[]"), ("plans.json",)),
            ("configurations-a-list", edit_json(_set("configurations", [])), ("configurations",)),
            ("no-configurations", edit_json(_drop("configurations")), ("configurations",)),
            ("writer-number", edit_json(_set("image_reader_writer", 3)), ("image_reader_writer",)),
            *[
                (f"patch-size-{mid}", edit_json(_patch_size(value)), ("3d_fullres.patch_size",))
                for mid, value in [
                    ("a-string", "big"),
                    ("four-values", [1, 2, 3, 4]),
                    ("a-zero", [0, 64, 64]),
                    ("floats", [8.0, 32.0, 32.0]),
                    ("missing", None),
                ]
            ],
            ("missing", remove, ("plans.json",)),
        ]
    ],
    *[
        Fault(f"dataset-json-{mid}", MODEL_READERS, f"{MODEL}/dataset.json", m, names)
        for mid, m, names in [
            ("truncated", truncate(0.5), ("dataset.json",)),
            ("not-json", content(NOT_JSON), ("dataset.json",)),
            ("labels-a-list", edit_json(_set("labels", [0, 1, 2, 3])), ("labels",)),
            ("no-labels", edit_json(_drop("labels")), ("labels",)),
            ("no-channel-names", edit_json(_drop("channel_names")), ("channel_names",)),
            ("file-ending-5", edit_json(_set("file_ending", 5)), ("file_ending",)),
            ("missing", remove, ("dataset.json",)),
        ]
    ],
    Fault("fold-missing", MODEL_READERS, FOLD, rmtree, ("fold_0",)),
    # input images
    *[
        Fault(f"image-{mid}", IMAGE_READERS, BAD_IMAGE, m, names)
        for mid, m, names in [
            ("truncate-50", truncate(0.5), ("heart_007_0000.nii.gz",)),
            ("truncate-90", truncate(0.9), ("heart_007_0000.nii.gz",)),
            ("empty", content(b""), ("heart_007_0000.nii.gz",)),
            ("junk", content(JUNK), ("heart_007_0000.nii.gz",)),
            ("channel-0-missing", rename_to("heart_007_0001.nii.gz"), ("heart_007",)),
            ("stray-image-name", add_file("notes.nii.gz", TEXT), ("notes.nii.gz",)),
            ("2d", label_image(np.zeros((48, 48), np.float32)), ("heart_007_0000.nii.gz",)),
            ("4d", image_4d, ("heart_007_0000.nii.gz",)),
            (
                "vector-pixels",
                label_image(np.zeros((4, 8, 8, 2), np.float32)),
                ("heart_007_0000.nii.gz",),
            ),
        ]
    ],
    # predict spec
    *[
        Fault(f"spec-{mid}", ("predict-spec",), "spec.json", m, names)
        for mid, m, names in [
            ("unknown-key", edit_json(_set("weigths", [1])), ("weigths",)),
            ("schema-version-9", edit_json(_set("schema_version", 9)), ("schema_version",)),
            (
                "member-path-missing",
                edit_json(_set("members", [{"model": f"{DATASET_NAME}/nothing__here__3d"}])),
                ("nothing__here__3d",),
            ),
            ("truncated", truncate(0.5), ("spec.json",)),
        ]
    ],
    # bundles
    *[
        Fault(f"bundle-{mid}", ("check", "bundle"), "bundle.zip", m, names)
        for mid, m, names in [
            ("truncate-50", truncate(0.5), ("bundle.zip",)),
            ("empty", content(b""), ("bundle.zip",)),
            ("changed-member", zip_member(BUNDLE_PLANS, lambda d: d + b" "), ("plans.json",)),
            (
                "manifest-unknown-key",
                zip_member(MANIFEST, _manifest_with("comment", "mine")),
                ("comment",),
            ),
            (
                "unlisted-member",
                zip_edit(lambda m: [*m.items(), (f"{DATASET_NAME}/notes.txt", TEXT)]),
                ("notes.txt",),
            ),
        ]
    ],
]

CASES_ = [
    pytest.param(fault, command, id=f"{command}-{fault.id}")
    for fault in FAULTS
    for command in fault.commands
]


def _run_fault(
    pristine: Path, commands: dict[str, Command], tmp_path: Path, fault: Fault, command: str
) -> tuple[Path, Path, Result]:
    root, out = copy_inputs(pristine, tmp_path)
    fault.mutate(root / fault.target)
    before = tree_hashes(root)
    result = run_command(commands[command], root, out)
    check_failure(commands[command], result, tmp_path, fault.names or (Path(fault.target).name,))
    assert tree_hashes(root) == before, "an input was modified (or validate wrote into it)"
    assert list(out.iterdir()) == [], "partial output"
    return root, out, result


@pytest.mark.parametrize(("fault", "command"), CASES_)
def test_fault_is_one_error_line(
    pristine: Path, commands: dict[str, Command], tmp_path: Path, fault: Fault, command: str
) -> None:
    _run_fault(pristine, commands, tmp_path, fault, command)


# --- outputs --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["predict", "bundle"])
def test_foreign_files_in_the_output_folder_are_refused(
    pristine: Path, commands: dict[str, Command], tmp_path: Path, command: str
) -> None:
    root, out = copy_inputs(pristine, tmp_path)
    (out / "pred").mkdir()
    mine = out / "pred" / "heart_006.nii.gz"
    mine.write_bytes(b"my notes\n")
    before, outputs = tree_hashes(root), tree_hashes(out)
    result = run_command(commands[command], root, out)
    check_failure(commands[command], result, tmp_path, ("pred",))
    assert "--overwrite" in error_lines(result.err)[0]
    assert tree_hashes(root) == before
    assert tree_hashes(out) == outputs


def test_export_refuses_an_existing_bundle_without_overwrite(
    pristine: Path, commands: dict[str, Command], tmp_path: Path
) -> None:
    root, out = copy_inputs(pristine, tmp_path)
    existing = out / "b.zip"
    existing.write_bytes(b"my notes\n")
    before = tree_hashes(root)
    result = run_command(commands["export"], root, out)
    check_failure(commands["export"], result, tmp_path, (str(existing), "--overwrite"))
    assert existing.read_bytes() == b"my notes\n"
    assert sorted(out.iterdir()) == [existing]
    assert tree_hashes(root) == before


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["-o", "{root}/" + MODEL + "/plans.json"], (".zip",)),
        (["-o", "{root}/" + MODEL], ("is one of the inputs",)),
    ],
    ids=["onto-plans-json", "onto-model-folder"],
)
def test_export_never_writes_onto_its_inputs(
    pristine: Path,
    commands: dict[str, Command],
    tmp_path: Path,
    argv: list[str],
    names: tuple[str, ...],
) -> None:
    root, out = copy_inputs(pristine, tmp_path)
    command = Command(
        "export",
        lambda r, o: ["export", "-m", _p(r / MODEL), "-f", "0", *(a.format(root=r) for a in argv)],
    )
    before = tree_hashes(root)
    result = run_command(command, root, out)
    check_failure(command, result, tmp_path, names)
    assert tree_hashes(root) == before
    assert leftovers(tmp_path) == []


def test_validate_never_writes_nnunets_validation_folder(
    pristine: Path, commands: dict[str, Command], tmp_path: Path
) -> None:
    """``--checkpoint`` cannot name a path, so the output is always ``validation_<stem>``."""
    root, out = copy_inputs(pristine, tmp_path)
    command = dataclasses.replace(
        commands["validate"],
        argv=lambda r, o: ["validate", "-i", _p(r / FOLD), "--checkpoint", "../validation"],
    )
    before = tree_hashes(root)
    result = run_command(command, root, out)
    check_failure(command, result, tmp_path, ("../validation",))
    assert tree_hashes(root) == before


def test_predict_arrays_refuses_a_truncated_image(pristine: Path, tmp_path: Path) -> None:
    """The notebook API checks its image files as the command does (no zeros read)."""
    from nnunet_ext.io import InputError
    from nnunet_ext.predict import predict_arrays

    root, _ = copy_inputs(pristine, tmp_path)
    truncate(0.9)(root / BAD_IMAGE)
    before = tree_hashes(root)
    with pytest.raises(InputError, match=r"heart_007_0000\.nii\.gz must be a complete gzip"):
        predict_arrays(
            [root / BAD_IMAGE], model_dirs=[root / MODEL], folds=[0], disable_tta=True, device="cpu"
        )
    assert tree_hashes(root) == before
