"""Zip members are verified to the end; the strict-schema helpers name key paths."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnunet_ext.io import InputError
from nnunet_ext.io.schema import check_keys, expect_int, expect_number, key_path
from nnunet_ext.io.zips import verify_zip


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path.read_bytes()


MEMBERS = {"a.nii.gz": bytes(range(256)) * 40, "b.nii.gz": b"hello world " * 300}


def test_intact_zip(tmp_path: Path) -> None:
    _zip(tmp_path / "s.zip", MEMBERS)
    assert verify_zip(tmp_path / "s.zip") == ["a.nii.gz", "b.nii.gz"]


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_bad_crc_member_is_one_input_error(tmp_path: Path, compression: int) -> None:
    data = bytearray(_zip(tmp_path / "s.zip", MEMBERS, compression))
    with zipfile.ZipFile(tmp_path / "s.zip") as archive:
        info = archive.getinfo("b.nii.gz")
    start = info.header_offset + 30 + len(info.filename)
    data[start + info.compress_size // 2] ^= 0x20
    (tmp_path / "s.zip").write_bytes(bytes(data))
    with pytest.raises(
        InputError,
        match=r"s\.zip must be a zip whose members pass their CRC-32 check; "
        r"got member 'b\.nii\.gz' damaged",
    ):
        verify_zip(tmp_path / "s.zip")


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_zip_is_refused(fraction: float) -> None:
    import tempfile

    folder = Path(tempfile.mkdtemp())
    data = _zip(folder / "full.zip", MEMBERS)
    path = folder / "cut.zip"
    path.write_bytes(data[: int(fraction * len(data))])
    with pytest.raises(InputError, match=r"cut\.zip must be a zip"):
        verify_zip(path)


def test_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_text("text")
    with pytest.raises(InputError, match=r"x\.zip must be a zip file; got something else"):
        verify_zip(tmp_path / "x.zip")


def test_key_paths_and_allowed_keys() -> None:
    where = key_path(key_path(key_path(None, "members"), 1), "label_weights")
    assert key_path(where, "3") == 'members[1].label_weights."3"'
    with pytest.raises(
        InputError,
        match=r'^s\.json: members\[1\]\.label_weights\."3"\.x must be absent '
        r"\(allowed keys: a, b\); got an unknown key\.",
    ):
        check_keys(
            {"a": 1, "x": 2}, source="s.json", where=key_path(where, "3"), allowed=["a", "b"]
        )
    with pytest.raises(InputError, match=r"^s\.json: top\.b must be present; got nothing"):
        check_keys({"a": 1}, source="s.json", where="top", allowed=["a", "b"], required=["b"])
    with pytest.raises(InputError, match="must be an integer; got the boolean true"):
        expect_int(True, source="s.json", where="n")
    with pytest.raises(InputError, match=r"must be a finite number; got the number inf"):
        expect_number(float("inf"), source="s.json", where="w")
    with pytest.raises(InputError, match=r"must be a number >= 0; got the number -1"):
        expect_number(-1, source="s.json", where="w", minimum=0)
