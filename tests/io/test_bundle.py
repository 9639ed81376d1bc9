"""Bundle checks without torch: every file listed with its size and SHA-256, nothing else."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnunet_ext.export.cli import main
from nnunet_ext.io import InputError
from nnunet_ext.io.bundle import (
    BUNDLE_FOLDER,
    extract_bundle,
    json_bytes,
    verify_bundle,
    zip_info,
)

DATASET = "Dataset501_X"
MODEL = f"{DATASET}/nnUNetTrainer__nnUNetPlans__3d_fullres"
CHECKPOINT = f"{MODEL}/fold_0/checkpoint_final.pth"
MANIFEST = f"{DATASET}/{BUNDLE_FOLDER}/manifest.json"


def _checkpoint_bytes() -> bytes:
    """A checkpoint as torch.save writes it, for the bundle's model folder."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(
        {
            "network_weights": {"conv.weight": torch.arange(16.0)},
            "trainer_name": "nnUNetTrainer",
            "init_args": {"configuration": "3d_fullres"},
        },
        buffer,
    )
    return buffer.getvalue()


_CHECKPOINT_BYTES = _checkpoint_bytes()


def _files() -> dict[str, bytes]:
    architecture = {"network_class_name": "PlainConvUNet", "arch_kwargs": {}}
    plans = {
        "configurations": {"3d_fullres": {"patch_size": [8, 8, 8], "architecture": architecture}}
    }
    spec = {
        "schema_version": 2,
        "members": [{"model": "../nnUNetTrainer__nnUNetPlans__3d_fullres"}],
    }
    return {
        f"{MODEL}/plans.json": json.dumps(plans).encode(),
        f"{MODEL}/dataset.json": b'{"labels": {}}',
        CHECKPOINT: _CHECKPOINT_BYTES,
        f"{DATASET}/{BUNDLE_FOLDER}/ensemble_spec.json": json.dumps(spec).encode(),
    }


def _manifest(files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "tool": "nnunet_ext.export",
        "versions": {"nnunet_ext": "0", "nnunetv2": "2.8.1", "torch": "2"},
        "dataset": DATASET,
        "members": [{"folder": "nnUNetTrainer__nnUNetPlans__3d_fullres"}],
        "spec": f"{DATASET}/{BUNDLE_FOLDER}/ensemble_spec.json",
        "postprocessing_plan": None,
        "files": [
            {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(files.items())
        ],
    }


def write_bundle(
    path: Path,
    files: dict[str, bytes] | None = None,
    *,
    manifest: dict[str, Any] | None = None,
    stored: dict[str, bytes] | None = None,
) -> Path:
    """A bundle whose manifest describes ``files`` but whose zip holds ``stored`` (default same)."""
    files = _files() if files is None else files
    manifest = _manifest(files) if manifest is None else manifest
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in sorted((files if stored is None else stored).items()):
            archive.writestr(zip_info(name), data)
        archive.writestr(zip_info(MANIFEST), json_bytes(manifest))
    return path


def test_an_intact_bundle_verifies_and_extracts(tmp_path: Path):
    bundle = write_bundle(tmp_path / "b.zip")
    info = verify_bundle(bundle)
    assert info.root == DATASET
    assert info.to_dict()["files"] == 4
    extract_bundle(bundle, tmp_path / "out")
    for name, data in _files().items():
        assert (tmp_path / "out" / name).read_bytes() == data
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["dataset"] == DATASET


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_changed_byte_of_any_file_is_refused_naming_that_file(tmp_path: Path, data: Any):
    files = _files()
    name = data.draw(st.sampled_from(sorted(files)))
    content = bytearray(files[name])
    position = data.draw(st.integers(0, len(content) - 1))
    content[position] ^= data.draw(st.integers(1, 255))
    bundle = write_bundle(
        tmp_path / "t.zip", files, stored={**files, name: bytes(content)}
    )  # the zip's own CRC is consistent: only our SHA-256 can tell
    with pytest.raises(InputError, match=rf"t\.zip: {name} must be a file with the manifest's SHA"):
        verify_bundle(bundle)
    with pytest.raises(InputError, match=rf"{name} must be a file with the manifest's SHA"):
        extract_bundle(bundle, tmp_path / "out")


def test_a_flipped_byte_in_the_zip_itself_is_refused_naming_the_file(tmp_path: Path):
    bundle = write_bundle(tmp_path / "b.zip")
    raw = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as archive:
        info = archive.getinfo(CHECKPOINT)
    offset = info.header_offset + 30 + len(CHECKPOINT.encode()) + 5  # inside the deflated data
    raw[offset] ^= 0xFF
    bundle.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=rf"b\.zip: {CHECKPOINT} must be"):
        verify_bundle(bundle)


def test_extra_missing_or_escaping_entries_are_refused(tmp_path: Path):
    files = _files()
    extra = write_bundle(tmp_path / "e.zip", files, stored={**files, f"{MODEL}/x.txt": b"x"})
    with pytest.raises(InputError, match=r"x\.txt must be listed in the manifest.*does not list"):
        verify_bundle(extra)
    fewer = {k: v for k, v in files.items() if k != CHECKPOINT}
    missing = write_bundle(tmp_path / "m.zip", files, stored=fewer)
    with pytest.raises(InputError, match=rf"{CHECKPOINT} must be listed .*; got missing"):
        verify_bundle(missing)
    escaping = {**files, "../evil.txt": b"x"}
    bad = write_bundle(tmp_path / "x.zip", escaping)
    with pytest.raises(InputError, match=r"relative paths; got the entry '\.\./evil\.txt'"):
        verify_bundle(bad)


def test_the_manifest_is_strict(tmp_path: Path):
    manifest = {**_manifest(_files()), "extra": 1}
    with pytest.raises(InputError, match=r"manifest\.json: extra must be absent"):
        verify_bundle(write_bundle(tmp_path / "k.zip", manifest=manifest))
    manifest = {**_manifest(_files()), "schema_version": 2}
    with pytest.raises(InputError, match="schema_version must be 1; got 2"):
        verify_bundle(write_bundle(tmp_path / "v.zip", manifest=manifest))
    (tmp_path / "plain.zip").write_bytes(b"PK nothing")
    with pytest.raises(InputError, match=r"plain\.zip must be a zip file"):
        verify_bundle(tmp_path / "plain.zip")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("a.txt", "a")
    with pytest.raises(InputError, match=r"one DATASET/nnunet_ext_bundle/manifest\.json; got 0"):
        verify_bundle(tmp_path / "other.zip")


def test_export_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    good = write_bundle(tmp_path / "good.zip")
    report = tmp_path / "report.json"
    assert main(["--check", str(good), "--json", str(report)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert json.loads(report.read_text())["members"] == ["nnUNetTrainer__nnUNetPlans__3d_fullres"]
    files = _files()
    bad = write_bundle(tmp_path / "bad.zip", files, stored={**files, CHECKPOINT: b"changed"})
    assert main(["--check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"bad.zip: {CHECKPOINT} must be {len(_CHECKPOINT_BYTES)} bytes" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["--check", str(good), "-o", str(tmp_path / "x.zip")]) == 1
    assert "--check takes only the bundle; remove -o/--output" in capsys.readouterr().err
