"""Command x fault matrix: every damaged or unusual input is one error line naming it, exit 1.

Each case copies the pristine input set, damages one input, runs the command in-process and
asserts: exit code 1; exactly one ``error:`` line, whose message names the damaged file (or
case); the inputs byte-identical afterwards; no temporary or lock file anywhere; no output
written; no traceback; the internal-error handler not reached. ``doctor`` reports damage as
findings on stdout (exit 1) instead of an error line.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import pickle
import shutil
import struct
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ._data import (
    COMMANDS,
    SHAPE,
    build_inputs,
    check_failure,
    check_nothing_or_finished_cases,
    properties_with,
    properties_without,
    run_command,
    tree_hashes,
)

Mutation = Callable[[Path], None]


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_inputs(tmp_path_factory.mktemp("robustness") / "inputs")


# --- mutations ------------------------------------------------------------------------------


def truncate(fraction: float) -> Mutation:
    def apply(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return apply


def drop_last(n: int) -> Mutation:
    def apply(path: Path) -> None:
        path.write_bytes(path.read_bytes()[:-n])

    return apply


def flip(fraction: float, count: int = 4) -> Mutation:
    def apply(path: Path) -> None:
        data = bytearray(path.read_bytes())
        start = int(len(data) * fraction)
        for i in range(start, min(start + count, len(data))):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))

    return apply


def content(data: bytes) -> Mutation:
    def apply(path: Path) -> None:
        path.write_bytes(data)

    return apply


def remove(path: Path) -> None:
    path.unlink()


def edit_json(change: Callable[[object], object]) -> Mutation:
    def apply(path: Path) -> None:
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return apply


def _set(key: str, value: object) -> Callable[[object], object]:
    def change(data: object) -> object:
        assert isinstance(data, dict)
        return {**data, key: value}

    return change


def _drop(key: str) -> Callable[[object], object]:
    def change(data: object) -> object:
        assert isinstance(data, dict)
        return {k: v for k, v in data.items() if k != key}

    return change


def _case_metric(name: str, value: object) -> Callable[[object], object]:
    """Set ``name`` of label 1 in the first case of an evaluation JSON."""

    def change(data: object) -> object:
        assert isinstance(data, dict)
        data["metric_per_case"][0]["metrics"]["1"][name] = value
        return data

    return change


def _without_label(key: str) -> Callable[[object], object]:
    """A valid evaluation of one label fewer."""

    def change(data: object) -> object:
        assert isinstance(data, dict)
        data["mean"].pop(key)
        for case in data["metric_per_case"]:
            case["metrics"].pop(key)
        return data

    return change


def _without_hd95(data: object) -> object:
    """A valid evaluation of Dice and IoU only (no HD95)."""
    assert isinstance(data, dict)
    data["metrics"] = ["dice"]
    data["foreground_mean"].pop("HD95")
    for entry in data["mean"].values():
        entry.pop("HD95")
        entry["num_undefined"].pop("HD95")
    for case in data["metric_per_case"]:
        for entry in case["metrics"].values():
            entry.pop("HD95")
    return data


def _convention(key: str, value: object) -> Callable[[object], object]:
    def change(data: object) -> object:
        assert isinstance(data, dict)
        data["conventions"][key] = value
        return data

    return change


def _without_case(case: str) -> Callable[[object], object]:
    """A valid evaluation without ``case``."""

    def change(data: object) -> object:
        assert isinstance(data, dict)
        data["metric_per_case"] = [c for c in data["metric_per_case"] if c["case"] != case]
        return data

    return change


def npz(array: np.ndarray, key: str = "probabilities") -> Mutation:
    def apply(path: Path) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{key: array})
        path.write_bytes(buffer.getvalue())

    return apply


def probabilities_with(value: float) -> Mutation:
    def apply(path: Path) -> None:
        with np.load(path) as data:
            probs = data["probabilities"].copy()
        probs[1, 2, 3, 4] = value
        npz(probs)(path)

    return apply


def huge_header(path: Path) -> None:
    """An .npz whose .npy header announces a shape of 2**40 float32 voxels."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 1048576, 1048576, 1), }"
    header += " " * (((len(header) + 11 + 63) // 64) * 64 - len(header) - 11) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("probabilities.npy", npy)
    path.write_bytes(buffer.getvalue())


def label_image(array: np.ndarray, spacing: tuple[float, ...] = (1.0, 1.0, 2.5)) -> Mutation:
    def apply(path: Path) -> None:
        import SimpleITK as sitk  # noqa: N813

        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing[: image.GetDimension()])
        sitk.WriteImage(image, str(path), True)

    return apply


def nifti_dims(dims: tuple[int, int, int]) -> Mutation:
    """Keep the voxel data, but make the NIfTI header announce other dimensions."""

    def apply(path: Path) -> None:
        raw = bytearray(gzip.decompress(path.read_bytes()))
        raw[42:48] = struct.pack("<3h", *dims)
        path.write_bytes(gzip.compress(bytes(raw)))

    return apply


def gzip_of(data: bytes) -> Mutation:
    def apply(path: Path) -> None:
        path.write_bytes(gzip.compress(data))

    return apply


def zip_edit(change: Callable[[dict[str, bytes]], list[tuple[str, bytes]]]) -> Mutation:
    def apply(path: Path) -> None:
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
            warnings.simplefilter("ignore")  # "Duplicate name": made on purpose
            for name, data in change(members):
                archive.writestr(name, data)

    return apply


def zip_bad_crc(path: Path) -> None:
    """Flip bytes inside the first member's stored data (the zip directory stays intact)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[0]
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + info.compress_size // 2, start + info.compress_size // 2 + 4):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def add_file(name: str, data: bytes) -> Mutation:
    """Add a file next to the target (the target itself is left as it is)."""

    def apply(path: Path) -> None:
        (path.parent / name).write_bytes(data)

    return apply


# --- the matrix -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    id: str
    commands: tuple[str, ...]
    target: str  # relative to the input root
    mutate: Mutation
    names: tuple[str, ...] = ()  # what the error must name; default: the target's file name


LABEL_READERS = ("postprocess", "postprocess-plan", "determine", "evaluate", "build")
REF_READERS = ("determine", "evaluate", "tune")
PROB_READERS = ("ensemble", "ensemble-spec", "ensemble-qc", "tune")
_rng = np.random.default_rng(0)
JUNK = bytes(_rng.integers(0, 256, size=700, dtype=np.uint8))
TEXT = b"these are my notes, not an image\n"


def _label_faults(
    target: str, commands: tuple[str, ...], tag: str, shaped: tuple[str, ...]
) -> list[Fault]:
    """Damaged label files; ``shaped``: the commands that compare shapes (with a reference)."""
    shape_2d = np.zeros(SHAPE[1:], dtype=np.uint8)
    wrong_shape = np.zeros((SHAPE[0] + 1, *SHAPE[1:]), dtype=np.uint8)
    float_labels = np.full(SHAPE, 2.4, dtype=np.float32)
    mutations: list[tuple[str, Mutation]] = [
        ("truncate-10", truncate(0.10)),
        ("truncate-50", truncate(0.50)),
        ("truncate-90", truncate(0.90)),
        ("truncate-last-byte", drop_last(1)),
        ("truncate-trailer", drop_last(8)),
        ("flip-middle", flip(0.5)),
        ("flip-trailer", flip(0.999, 2)),
        ("empty", content(b"")),
        ("junk", content(JUNK)),
        ("gzip-of-text", gzip_of(TEXT)),
        ("header-huge-dims", nifti_dims((30000, 30000, 30000))),
        ("header-more-voxels", nifti_dims((16, 16, 7))),
        ("float-labels", label_image(float_labels)),
        ("negative-labels", label_image(np.full(SHAPE, -1, dtype=np.int16))),
    ]
    shape_faults = [("wrong-shape", label_image(wrong_shape)), ("2d", label_image(shape_2d))]
    return [Fault(f"{tag}-{mid}", commands, target, m) for mid, m in mutations] + [
        Fault(f"{tag}-{mid}", shaped, target, m) for mid, m in shape_faults
    ]


FAULTS: list[Fault] = [
    *_label_faults("m1/case_b.nii.gz", LABEL_READERS, "label", ("determine", "evaluate", "build")),
    *_label_faults("ref/case_b.nii.gz", REF_READERS, "reference", REF_READERS),
    # probabilities
    *[
        Fault(f"npz-{mid}", PROB_READERS, "m1/case_b.npz", m)
        for mid, m in [
            ("truncate-10", truncate(0.10)),
            ("truncate-50", truncate(0.50)),
            ("truncate-last-byte", drop_last(1)),
            ("flip-middle", flip(0.5)),
            ("empty", content(b"")),
            ("junk", content(JUNK)),
            ("nan", probabilities_with(float("nan"))),
            ("inf", probabilities_with(float("inf"))),
            ("negative", probabilities_with(-0.5)),
            ("above-one", probabilities_with(1.5)),
            ("extra-channel", npz(np.full((5, *SHAPE), 0.2, dtype=np.float32))),
            ("wrong-shape", npz(np.full((4, SHAPE[0] + 1, *SHAPE[1:]), 0.25, dtype=np.float32))),
            ("int-dtype", npz(np.ones((4, *SHAPE), dtype=np.int64))),
            ("3d", npz(np.full(SHAPE, 0.25, dtype=np.float32))),
            ("wrong-key", npz(np.full((4, *SHAPE), 0.25, dtype=np.float32), key="softmax")),
            ("huge-header", huge_header),
        ]
    ],
    # properties pickles
    *[
        Fault(f"pkl-{mid}", ("ensemble", "ensemble-spec", "ensemble-qc"), "m1/case_b.pkl", m)
        for mid, m in [
            ("truncate-50", truncate(0.5)),
            ("empty", content(b"")),
            ("junk", content(JUNK)),
            ("no-sitk-stuff", content(properties_without("sitk_stuff"))),
            ("sitk-stuff-a-list", content(properties_with("sitk_stuff", [1, 2]))),
            ("no-origin", content(properties_without("sitk_stuff", "origin"))),
            ("a-list", content(pickle.dumps([1, 2, 3]))),
            ("unsafe", content(pickle.dumps(Path("x")))),
        ]
    ],
    # dataset.json of the prediction folder
    *[
        Fault(f"dataset-json-{mid}", cmds, "m1/dataset.json", m)
        for mid, m, cmds in [
            ("a-list", content(b"[1, 2]"), ("ensemble", "postprocess", "build", "tune")),
            ("truncated", truncate(0.5), ("ensemble", "postprocess", "build", "tune")),
            ("not-utf8", content(b'{"labels": "\xff"}'), ("ensemble", "postprocess", "build")),
            ("nan", content(b'{"labels": {"background": NaN}}'), ("ensemble", "build")),
            ("file-ending-5", edit_json(_set("file_ending", 5)), ("ensemble", "postprocess")),
            (
                "label-x",
                edit_json(_set("labels", {"background": 0, "a": "x"})),
                ("ensemble", "postprocess", "build", "tune"),
            ),
            ("no-labels", edit_json(_drop("labels")), ("ensemble", "build", "tune")),
            (
                "labels-a-list",
                edit_json(_set("labels", [0, 1, 2, 3])),
                ("ensemble", "postprocess", "build", "tune"),
            ),
            ("missing", remove, ("ensemble",)),
        ]
    ],
    # nnU-Net's splits_final.json (tune --splits)
    *[
        Fault(f"splits-{mid}", ("tune",), "splits_final.json", m, ("splits_final.json", *names))
        for mid, m, names in [
            ("truncated", truncate(0.5), ()),
            ("not-json", content(b"fold 0: case_a\n"), ()),
            ("an-object", content(b'{"val": ["case_a"]}'), ("list of folds",)),
            ("empty", content(b"[]"), ("list of folds",)),
            ("no-val", edit_json(lambda f: [{"train": x["train"]} for x in f]), ("[0].val",)),
            ("val-numbers", edit_json(lambda f: [{**x, "val": [1]} for x in f]), ("[0].val",)),
            ("case-in-no-fold", edit_json(lambda f: f[:1]), ("case_b",)),
            ("case-in-two-folds", edit_json(lambda f: [*f, f[0]]), ("case_a",)),
            ("missing", remove, ()),
        ]
    ],
    # plans.json
    *[
        Fault(f"plans-json-{mid}", ("ensemble",), "m1/plans.json", m)
        for mid, m in [
            ("a-list", content(b"[]")),
            ("truncated", truncate(0.5)),
            ("no-writer", edit_json(_drop("image_reader_writer"))),
            ("unknown-writer", edit_json(_set("image_reader_writer", "NoSuchIO"))),
            ("writer-number", edit_json(_set("image_reader_writer", 3))),
            ("missing", remove),
        ]
    ],
    # ensemble spec
    *[
        Fault(f"spec-{mid}", ("ensemble-spec",), "spec.json", m)
        for mid, m in [
            ("unknown-key", edit_json(_set("weigths", [1, 2]))),
            ("members-not-list", edit_json(_set("members", {"path": "m1"}))),
            ("no-members", edit_json(_drop("members"))),
            ("no-schema-version", edit_json(_drop("schema_version"))),
            ("schema-version-9", edit_json(_set("schema_version", 9))),
            (
                "weight-x",
                edit_json(_set("members", [{"path": "m1", "weight": "x"}, {"path": "m2"}])),
            ),
            (
                "negative-weight",
                edit_json(_set("members", [{"path": "m1", "weight": -1}, {"path": "m2"}])),
            ),
            (
                "member-unknown-key",
                edit_json(_set("members", [{"path": "m1", "wieght": 1}, {"path": "m2"}])),
            ),
            (
                "unknown-label",
                edit_json(
                    _set("members", [{"path": "m1", "label_weights": {"9": 1}}, {"path": "m2"}])
                ),
            ),
            ("truncated", truncate(0.5)),
            ("a-list", content(b"[]")),
        ]
    ],
    # postprocessing plan
    *[
        Fault(f"plan-{mid}", ("postprocess-plan",), "plan.json", m)
        for mid, m in [
            ("unknown-key", edit_json(_set("keep_largets", [1]))),
            ("truncated", truncate(0.5)),
            ("a-list", content(b"[]")),
            ("keep-largest-x", edit_json(_set("keep_largest", ["x"]))),
            ("label-9", edit_json(_set("keep_largest", [9]))),
            ("no-schema-version", edit_json(_drop("schema_version"))),
        ]
    ],
    # evaluations (compare): damaged files, and valid ones evaluated otherwise than eval_m1.json
    *[
        Fault(f"evaluation-{mid}", ("compare",), "eval_m2.json", m)
        for mid, m in [
            ("truncated", truncate(0.5)),
            ("junk", content(JUNK)),
            ("empty", content(b"")),
            ("a-list", content(b"[]")),
            ("unknown-key", edit_json(_set("p_value", 0.01))),
            ("no-schema-version", edit_json(_drop("schema_version"))),
            ("dice-text", edit_json(_case_metric("Dice", "high"))),
            ("other-labels", edit_json(_without_label("3"))),
            ("other-metrics", edit_json(_without_hd95)),
            ("other-conventions", edit_json(_convention("empty", "one"))),
            ("missing-case", edit_json(_without_case("case_b"))),
        ]
    ],
    # QC tables (submission check --qc)
    *[
        Fault(f"qc-csv-{mid}", ("check-qc",), "qc.csv", m)
        for mid, m in [
            ("empty", content(b"")),
            ("junk", content(JUNK)),
            ("text", content(TEXT)),
            ("other-table", content(b"case,dice\ncase_a,0.9\n")),
            ("nul-byte", content(b"case,label\x00\n")),
            ("short-row", content(b"case,label,name,flag,estimated_dice\ncase_a,1\n")),
        ]
    ],
    # submission zips
    *[
        Fault(f"zip-{mid}", ("check",), "sub.zip", m, names)
        for mid, m, names in [
            ("truncate-50", truncate(0.5), ("sub.zip",)),
            ("truncate-last-byte", drop_last(1), ("sub.zip",)),
            ("bad-crc", zip_bad_crc, ("case_a.nii.gz",)),
            ("empty", content(b""), ("sub.zip",)),
            ("junk", content(JUNK), ("sub.zip",)),
            (
                "missing-case",
                zip_edit(lambda m: [(n, d) for n, d in m.items() if n != "case_b.nii.gz"]),
                ("case_b",),
            ),
            (
                "unknown-member",
                zip_edit(lambda m: [*m.items(), ("notes.txt", TEXT)]),
                ("notes.txt",),
            ),
            (
                "duplicate-member",
                zip_edit(lambda m: [*m.items(), ("case_b.nii.gz", m["case_b.nii.gz"])]),
                ("case_b",),
            ),
            (
                "member-truncated",
                zip_edit(lambda m: [(n, d[: len(d) // 2]) for n, d in m.items()]),
                ("case_a.nii.gz",),
            ),
            (
                "nested-member",
                zip_edit(lambda m: [(f"preds/{n}", d) for n, d in m.items()]),
                ("preds/case_a.nii.gz",),
            ),
        ]
    ],
    # training logs
    *[
        Fault(f"log-{mid}", ("log",), "fold/training_log_2026_11_9_10_00_00.txt", m)
        for mid, m in [
            ("junk", content(JUNK)),
            ("text", content(TEXT * 20)),
            ("empty", content(b"")),
            (
                "impossible-timestamp",
                content(b"2026-13-45 10:00:00.000001: Epoch 0 \n2026-13-45 10:00:01: x \n"),
            ),
        ]
    ],
    # doctor: damaged raw data is a finding naming the file
    *[
        Fault(
            f"doctor-{mid}",
            ("doctor",),
            "raw/Dataset501_SyntheticHeart/labelsTr/heart_001.nii.gz",
            m,
        )
        for mid, m in [
            ("truncate-50", truncate(0.5)),
            ("float-labels", label_image(np.full((6, 16, 16), 2.4, dtype=np.float32))),
        ]
    ],
    # test images (they define the expected cases and geometry of a submission)
    *[
        Fault(f"image-{mid}", ("build", "check"), "images/case_b_0000.nii.gz", m, names)
        for mid, m, names in [
            # only the header (geometry) of a test image is read without --preview
            ("truncate-in-header", truncate(0.01), ("case_b_0000.nii.gz",)),
            ("junk", content(JUNK), ("case_b_0000.nii.gz",)),
            ("empty", content(b""), ("case_b_0000.nii.gz",)),
            (
                "other-spacing",
                label_image(np.zeros(SHAPE, np.float32), (2.0, 1.0, 2.5)),
                ("case_b",),
            ),
            ("missing", remove, ("case_b",)),
        ]
    ],
    # cases: missing, duplicate, junk files
    # (tune leaves out cases missing in some folder, with a warning: by design)
    Fault("missing-member-case", ("ensemble",), "m2/case_b.npz", remove, ("case_b",)),
    Fault(
        "missing-reference-case",
        ("determine", "evaluate"),
        "ref/case_b.nii.gz",
        remove,
        ("case_b",),
    ),
    Fault("missing-test-case", ("build",), "m1/case_b.nii.gz", remove, ("case_b",)),
    Fault(
        "junk-label-file",
        ("postprocess", "evaluate", "build"),
        "m1/case_a.nii.gz",
        add_file("notes.nii.gz", TEXT),
        ("notes",),
    ),
    Fault(
        "junk-npz-file",
        ("ensemble",),
        "m1/case_a.npz",
        add_file("notes.npz", TEXT),
        ("notes",),
    ),
]

CASES_ = [
    pytest.param(fault, command, id=f"{command}-{fault.id}")
    for fault in FAULTS
    for command in fault.commands
]


@pytest.mark.parametrize(("fault", "command"), CASES_)
def test_fault_is_one_error_line(
    pristine: Path, tmp_path: Path, fault: Fault, command: str
) -> None:
    root = tmp_path / "inputs"
    shutil.copytree(pristine, root)
    out = tmp_path / "out"
    out.mkdir()
    fault.mutate(root / fault.target)
    before = tree_hashes(root)
    result = run_command(COMMANDS[command], root, out)
    check_failure(COMMANDS[command], result, tmp_path, fault.names or (Path(fault.target).name,))
    assert tree_hashes(root) == before, "an input was modified"
    check_nothing_or_finished_cases(COMMANDS[command], result, out)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_valid_inputs_succeed(pristine: Path, tmp_path: Path, command: str) -> None:
    """The baseline: on the pristine inputs every command succeeds (doctor: no problem)."""
    from ._data import check_outcome

    root = tmp_path / "inputs"
    shutil.copytree(pristine, root)
    out = tmp_path / "out"
    out.mkdir()
    before = tree_hashes(root)
    result = run_command(COMMANDS[command], root, out)
    assert result.code == 0, result.out + result.err
    check_outcome(COMMANDS[command], result, tmp_path, out)
    assert tree_hashes(root) == before


# (command, extra arguments, what the error line must name): option values the inputs refute
BAD_OPTIONS = [
    ("evaluate", ("--labels", "9"), ("9",)),
    ("evaluate", ("--labels", "Aorta"), ("Aorta",)),
    ("determine", ("--labels", "9"), ("9",)),
    ("build", ("--labels", "0", "1", "9"), ("9",)),
    ("check", ("--labels", "0", "1"), ("case_a",)),
    ("postprocess", ("--keep-largest", "9"), ("9",)),
    ("postprocess", ("--fill-holes", "7"), ("7",)),
    ("ensemble", ("--weights", "1", "-1"), ("weights",)),
    ("ensemble", ("--weights", "1"), ("weights",)),
    ("ensemble-qc", ("--qc-max-components", "-1"), ("--qc-max-components",)),
    ("ensemble-qc", ("--allow-missing",), ("--allow-missing",)),
    ("check-qc", ("--qc", "{root}/nothing.csv"), ("nothing.csv",)),
    ("tune", ("--dataset-json", "{root}/ref/case_a.nii.gz"), ("case_a.nii.gz",)),
    ("evaluate", ("--dataset-json", "{root}/nothing.json"), ("nothing.json",)),
    ("evaluate", ("--file-ending", ".mha"), (".mha",)),
    ("compare", ("--names", "A"), ("--names",)),
    ("compare", ("--samples", "10"), ("--samples",)),
]


@pytest.mark.parametrize(
    ("command", "extra", "names"),
    BAD_OPTIONS,
    ids=[f"{c}-{'-'.join(Path(e).name for e in x)}" for c, x, _ in BAD_OPTIONS],
)
def test_bad_option_is_one_error_line(
    pristine: Path, tmp_path: Path, command: str, extra: tuple[str, ...], names: tuple[str, ...]
) -> None:
    root = tmp_path / "inputs"
    shutil.copytree(pristine, root)
    out = tmp_path / "out"
    out.mkdir()
    base = COMMANDS[command]
    with_options = dataclasses.replace(
        base, argv=lambda r, o: [*base.argv(r, o), *(e.format(root=r) for e in extra)]
    )
    before = tree_hashes(root)
    result = run_command(with_options, root, out)
    check_failure(with_options, result, tmp_path, names)
    assert tree_hashes(root) == before
    assert list(out.iterdir()) == []
