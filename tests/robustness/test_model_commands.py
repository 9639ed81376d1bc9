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

Beyond damage, inputs that are whole but wrong (issue 23): checkpoints whose pickle would run
code (refused naming the global; a marker file proves the payload never ran), checkpoints and
plans.json of another model or network, bundles whose spec leaves the bundle or whose checkpoint
is code with the manifest's digests recomputed, unreadable entries named like a case image, an
output inside the images folder, bad option values (refused before the output folder exists)
and an output folder locked by a first writer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
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
BUNDLE_SPEC = f"{DATASET_NAME}/nnunet_ext_bundle/ensemble_spec.json"
BUNDLE_MODEL = f"{DATASET_NAME}/nnUNetTrainer__nnUNetPlans__3d_fullres"
BUNDLE_PLANS = f"{BUNDLE_MODEL}/plans.json"
BUNDLE_CHECKPOINT = f"{BUNDLE_MODEL}/fold_0/checkpoint_final.pth"
#: An entry of the images folder named like a case image, but not a readable file.
UNREADABLE_IMAGE = "images/heart_008_0000.nii.gz"


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


def _trainer_name(value: str) -> Callable[[dict], object]:
    return lambda checkpoint: {**checkpoint, "trainer_name": value}


def _in_3d_fullres(change: Callable[[dict], object]) -> Callable[[object], object]:
    """Apply ``change`` (in place) to ``configurations.3d_fullres`` of a plans.json."""

    def apply(plans: object) -> object:
        assert isinstance(plans, dict)
        change(plans["configurations"]["3d_fullres"])
        return plans

    return apply


def _fewer_stages(configuration: dict) -> None:
    kwargs = configuration["architecture"]["arch_kwargs"]
    kwargs["n_stages"] -= 1


def _wider_last_stage(configuration: dict) -> None:
    kwargs = configuration["architecture"]["arch_kwargs"]
    kwargs["features_per_stage"][-1] *= 2


def symlink_to(target: str) -> Mutation:
    def apply(path: Path) -> None:
        path.symlink_to(target)

    return apply


def make_folder(path: Path) -> None:
    path.mkdir()


def zip_member_resealed(name: str, change: Callable[[bytes], bytes]) -> Mutation:
    """Change one bundle member and recompute its manifest entry (size, SHA-256).

    The manifest's digests are integrity against damage, not a signature: anyone can recompute
    them, so a bundle changed this way passes every size and digest check.
    """

    def edit(members: dict[str, bytes]) -> list[tuple[str, bytes]]:
        data = change(members[name])
        manifest = json.loads(members[MANIFEST])
        entries = [e for e in manifest["files"] if e["path"] == name]
        assert len(entries) == 1, name
        entries[0].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
        changed = {name: data, MANIFEST: json.dumps(manifest, indent=2).encode()}
        return [(n, changed.get(n, d)) for n, d in members.items()]

    return zip_edit(edit)


def _checkpoint_bytes(change: Callable[[dict], object]) -> Callable[[bytes], bytes]:
    """:func:`edit_checkpoint` for a checkpoint held in memory (a bundle member)."""

    def apply(data: bytes) -> bytes:
        import torch

        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        buffer = io.BytesIO()
        torch.save(change(checkpoint), buffer)
        return buffer.getvalue()

    return apply


def bundle_spec_member(member: Callable[[Path, dict], dict]) -> Mutation:
    """Replace the first member of the bundle's spec by ``member(input root, old member)``."""

    def apply(path: Path) -> None:
        def change(data: bytes) -> bytes:
            spec = json.loads(data)
            spec["members"][0] = member(path.parent, spec["members"][0])
            return json.dumps(spec, indent=2).encode()

        zip_member_resealed(BUNDLE_SPEC, change)(path)

    return apply


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
    # checkpoints of another model folder (checked against the folder before any network loads)
    *[
        Fault(f"checkpoint-{mid}", cmds, CHECKPOINT, edit_checkpoint(change), names)
        for mid, cmds, change, names in [
            (
                "configuration-2d",
                ("predict", "export", "validate"),
                _configuration("2d"),
                ("checkpoint_final.pth", "init_args.configuration", "'2d'"),
            ),
            (
                "another-trainer",
                ("predict-spec",),
                _trainer_name("nnUNetTrainer"),
                ("checkpoint_final.pth", "trainer_name", "'nnUNetTrainer'"),
            ),
        ]
    ],
    # a plans.json whose network is not the one the checkpoint was trained as
    *[
        Fault(f"plans-{mid}", cmds, f"{MODEL}/plans.json", edit_json(_in_3d_fullres(c)), names)
        for mid, cmds, c, names in [
            (
                "n-stages-edited",
                ("predict", "validate"),
                _fewer_stages,
                ("plans.json", "3d_fullres.architecture.arch_kwargs.n_stages"),
            ),
            (
                "features-per-stage-edited",
                ("predict-spec",),
                _wider_last_stage,
                ("plans.json", "3d_fullres.architecture.arch_kwargs.features_per_stage"),
            ),
            (
                "no-architecture",
                ("predict", "validate"),
                lambda c: c.pop("architecture"),
                ("plans.json", "3d_fullres.architecture"),
            ),
        ]
    ],
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
    # entries named like a case image that are no readable file (never skipped)
    *[
        Fault(f"image-entry-{mid}", cmds, UNREADABLE_IMAGE, m, ("heart_008_0000.nii.gz", what))
        for mid, cmds, m, what in [
            ("broken-link", ("predict", "bundle"), symlink_to("nowhere"), "a broken link"),
            ("link-loop", ("predict",), symlink_to("heart_008_0000.nii.gz"), "a link loop"),
            ("folder", ("bundle",), make_folder, "a folder"),
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
    # a bundle is closed: its spec (digests recomputed) names only the bundle's model folders
    *[
        Fault(f"bundle-spec-{mid}", cmds, "bundle.zip", bundle_spec_member(member), names)
        for mid, cmds, member, names in [
            (
                "absolute-model",
                ("check", "bundle"),
                lambda root, old: {**old, "model": str(root / MODEL)},
                ("ensemble_spec.json", "members[0].model", str(MODEL)),
            ),
            (
                "model-outside",
                ("check",),
                lambda root, old: {**old, "model": "../../../elsewhere"},
                ("ensemble_spec.json", "members[0].model", "../../../elsewhere"),
            ),
            (
                "probability-folder",
                ("check",),
                lambda root, old: {"path": str(root / "images"), "weight": 1.0},
                ("ensemble_spec.json", "members[0]"),
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


# --- checkpoints that are code --------------------------------------------------------------


class _Call:
    """Pickles as the call ``function(*args)`` (``__reduce__``): a malicious pickle's payload."""

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return self.function, self.args


def _payload(kind: str, marker: Path) -> tuple[_Call, str]:
    """A payload creating ``marker`` when unpickled, and a pattern of the global it names.

    ``os.system`` pickles as ``posix.system``; torch.save's protocol 2 spells ``builtins`` as
    ``__builtin__``.
    """
    if kind == "os-system":
        return _Call(os.system, f"touch '{marker}'"), r"the global (os|posix|nt)\.system\b"
    code = f"open({str(marker)!r}, 'w').close()"
    return _Call(exec, code), r"the global (builtins|__builtin__)\.exec\b"


def _with_payload(where: str, payload: _Call) -> Callable[[dict], object]:
    """Add ``payload`` to a checkpoint dict, at its top level or inside ``init_args``."""

    def change(checkpoint: dict) -> object:
        if where == "top-level":
            return {**checkpoint, "notes": payload}
        return {**checkpoint, "init_args": {**checkpoint["init_args"], "notes": payload}}

    return change


# (payload, where in the checkpoint, command); a bundle's checkpoint with its digests recomputed
MALICIOUS = [
    *[("os-system", "top-level", command) for command in MODEL_READERS],
    ("exec", "init-args", "predict"),
    ("os-system", "top-level", "check"),
    ("exec", "init-args", "bundle"),
]


@pytest.mark.parametrize(
    ("kind", "where", "command"), MALICIOUS, ids=[f"{c}-{k}-{w}" for k, w, c in MALICIOUS]
)
def test_malicious_checkpoint_is_refused_without_running_it(
    pristine: Path,
    commands: dict[str, Command],
    tmp_path: Path,
    kind: str,
    where: str,
    command: str,
) -> None:
    """One line naming the checkpoint and the global; the payload never runs."""
    marker = tmp_path / "written-by-the-checkpoint"
    payload, pattern = _payload(kind, marker)
    change = _with_payload(where, payload)
    if command in ("check", "bundle"):
        fault = Fault(
            f"bundle-checkpoint-{kind}",
            (command,),
            "bundle.zip",
            zip_member_resealed(BUNDLE_CHECKPOINT, _checkpoint_bytes(change)),
            ("checkpoint_final.pth",),
        )
    else:
        fault = Fault(
            f"checkpoint-{kind}",
            (command,),
            CHECKPOINT,
            edit_checkpoint(change),
            ("checkpoint_final.pth",),
        )
    _, _, result = _run_fault(pristine, commands, tmp_path, fault, command)
    assert re.search(pattern, error_lines(result.err)[0]), result.err
    assert not marker.exists(), "the checkpoint's payload ran"


def test_the_malicious_payloads_run_when_loaded_as_nnunet_does(
    pristine: Path, tmp_path: Path
) -> None:
    """The control: ``torch.load(weights_only=False)`` (nnU-Net's own load) runs each payload."""
    import torch

    for kind, where in (("os-system", "top-level"), ("exec", "init-args")):
        marker = tmp_path / f"written-by-{kind}"
        file = tmp_path / f"{kind}.pth"
        shutil.copyfile(pristine / CHECKPOINT, file)
        edit_checkpoint(_with_payload(where, _payload(kind, marker)[0]))(file)
        assert not marker.exists()
        torch.load(file, map_location="cpu", weights_only=False)
        assert marker.exists(), kind


# --- images folder, outputs and options -----------------------------------------------------


def test_junk_not_named_like_a_case_is_ignored(
    pristine: Path, commands: dict[str, Command], tmp_path: Path
) -> None:
    """macOS ``._*`` files, ``.DS_Store`` and notes beside the images are not cases."""
    root, out = copy_inputs(pristine, tmp_path)
    for name in ("._heart_006_0000.nii.gz", ".DS_Store", "notes.txt"):
        (root / "images" / name).write_bytes(JUNK)
    before = tree_hashes(root)
    result = run_command(commands["predict"], root, out)
    assert result.code == 0, result.out + result.err
    check_common(result, tmp_path)
    assert tree_hashes(root) == before
    assert sorted(json.loads(result.out.splitlines()[-1])["written"]) == list(CASES)
    _check_labels(out / "pred", root)


def _output_at(argv: list[str], output: str) -> list[str]:
    at = argv.index("-o") + 1
    return [*argv[:at], output, *argv[at + 1 :]]


@pytest.mark.parametrize(
    ("command", "output"),
    [("predict", "images/pred"), ("predict", "images"), ("bundle", "images/pred")],
    ids=["predict-inside-images", "predict-images-itself", "bundle-inside-images"],
)
def test_output_inside_the_images_folder_is_refused(
    pristine: Path, commands: dict[str, Command], tmp_path: Path, command: str, output: str
) -> None:
    root, out = copy_inputs(pristine, tmp_path)
    base = commands[command]
    inside = dataclasses.replace(
        base, argv=lambda r, o: _output_at(base.argv(r, o), _p(r / output))
    )
    before = tree_hashes(root)
    result = run_command(inside, root, out)
    check_failure(inside, result, tmp_path, (str(root / output),))
    assert tree_hashes(root) == before, "written into the images folder"
    assert list(out.iterdir()) == []


# (command, extra arguments, the flag the error line names): checked before any model loads
BAD_RUN_OPTIONS = [
    ("predict", ("--claim-timeout", "0"), "--claim-timeout"),
    ("predict", ("--claim-timeout", "nan"), "--claim-timeout"),
    ("predict", ("--part-id", "3", "--num-parts", "2"), "--part-id"),
    ("predict", ("--num-parts", "0"), "--num-parts"),
    ("predict", ("--step-size", "0"), "--step-size"),
    ("bundle", ("--step-size", "2"), "--step-size"),
    ("predict", ("--weights", "1", "2"), "--weights"),
    ("predict", ("--weights", "-1"), "--weights"),
    ("predict", ("--weights", "nan"), "--weights"),
    ("predict", ("--mirror-axes", "7"), "--mirror-axes"),
    ("bundle", ("--allow-unsafe-checkpoints",), "--allow-unsafe-checkpoints"),
]


@pytest.mark.parametrize(
    ("command", "extra", "flag"),
    BAD_RUN_OPTIONS,
    ids=[f"{c}{'_'.join(x)}" for c, x, _ in BAD_RUN_OPTIONS],
)
def test_bad_option_value_is_refused_before_the_output_exists(
    pristine: Path,
    commands: dict[str, Command],
    tmp_path: Path,
    command: str,
    extra: tuple[str, ...],
    flag: str,
) -> None:
    root, out = copy_inputs(pristine, tmp_path)
    base = commands[command]
    with_options = dataclasses.replace(base, argv=lambda r, o: [*base.argv(r, o), *extra])
    before = tree_hashes(root)
    result = run_command(with_options, root, out)
    check_common(result, tmp_path)
    assert result.code in (1, 2), f"exit {result.code}\n{result.out}\n{result.err}"
    lines = error_lines(result.err)
    assert len(lines) == 1, result.err
    assert flag in lines[0], lines[0]
    assert tree_hashes(root) == before
    assert list(out.iterdir()) == [], "the output folder was created"


# --- one writer per output folder -----------------------------------------------------------


@pytest.mark.parametrize("claim", [False, True], ids=["without-claim", "with-claim"])
def test_a_locked_output_folder(
    pristine: Path, commands: dict[str, Command], tmp_path: Path, claim: bool
) -> None:
    """A first writer holds the folder's lock: a second run without ``--claim`` is refused at
    once naming it; with ``--claim`` (processes share the folder through claim files) it is not.
    """
    from nnunet_ext.io.locks import OutputLock

    root, out = copy_inputs(pristine, tmp_path)
    (out / "pred").mkdir()
    base = commands["predict"]
    second = dataclasses.replace(base, argv=lambda r, o: [*base.argv(r, o), *["--claim"] * claim])
    before = tree_hashes(root)
    lock = OutputLock(out / "pred", "nnunet-ext predict")
    lock.acquire()
    try:
        result = run_command(second, root, out)
    finally:
        lock.release()
    assert tree_hashes(root) == before
    if not claim:
        holder = (f"pid {os.getpid()} on host", "running 'nnunet-ext predict'", str(out / "pred"))
        check_failure(second, result, tmp_path, holder)
        assert list((out / "pred").iterdir()) == []
        return
    assert result.code == 0, result.out + result.err
    check_common(result, tmp_path)
    _check_labels(out / "pred", root)
