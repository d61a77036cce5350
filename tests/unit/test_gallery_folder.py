"""Folder contract and scanning: temp names, settling, symlinks, stray and unreadable entries."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
import unicodedata
from pathlib import Path

import pytest

from edgeface.gallery.folder import FolderScanner, GalleryScan, is_temporary_name

SETTLE = 0.5


def _write(path: Path, data: bytes = b"x" * 100, age: float = 3600.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def _reasons(scan: GalleryScan) -> dict[str, str]:
    return {p.path.name: p.reason for p in scan.problems}


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.jpg",
        ".syncthing.a.jpg.tmp",
        ".~tmp~",
        "a.jpg.tmp",
        "a.jpg.part",
        "~a.jpg",
        "A.JPG.PART",
    ],
)
def test_temporary_names(name: str) -> None:
    assert is_temporary_name(name)


@pytest.mark.parametrize("name", ["a.jpg", "José.png", "not", "person.yaml", "a~b.jpg"])
def test_ordinary_names(name: str) -> None:
    assert not is_temporary_name(name)


def test_scan_finds_people_photos_and_negatives(tmp_path: Path) -> None:
    _write(tmp_path / "alice" / "1.jpg")
    _write(tmp_path / "alice" / "2.JPEG")
    _write(tmp_path / "alice" / "not" / "bob-lookalike.png")
    _write(tmp_path / "alice" / "person.yaml")
    _write(tmp_path / "bob" / "b.webp")
    (tmp_path / "empty").mkdir()
    scan = FolderScanner(tmp_path, SETTLE).scan(time.time())
    assert scan.people == ("alice", "bob", "empty")
    assert [(p.person, p.path.name, p.negative) for p in scan.photos] == [
        ("alice", "1.jpg", False),
        ("alice", "2.JPEG", False),
        ("alice", "bob-lookalike.png", True),
        ("bob", "b.webp", False),
    ]
    assert scan.problems == ()
    assert scan.photos[0].size == 100


def test_temp_names_are_ignored_silently(tmp_path: Path) -> None:
    _write(tmp_path / "alice" / "ok.jpg")
    for name in [".syncthing.x.jpg.tmp", "x.jpg.part", "~x.jpg", ".hidden.jpg", "y.tmp"]:
        _write(tmp_path / "alice" / name)
    _write(tmp_path / "alice" / ".~tmp~" / "z.jpg")  # rsync --delay-updates staging folder
    _write(tmp_path / ".stfolder" / "marker")
    scan = FolderScanner(tmp_path, SETTLE).scan(time.time())
    assert [p.path.name for p in scan.photos] == ["ok.jpg"]
    assert scan.problems == ()
    assert scan.people == ("alice",)


def test_a_file_is_taken_only_once_stable(tmp_path: Path) -> None:
    scanner = FolderScanner(tmp_path, SETTLE)
    t0 = time.time()
    photo = _write(tmp_path / "alice" / "new.jpg", b"part", age=0)
    first = scanner.scan(t0)
    assert first.photos == () and first.pending == (photo,)
    assert first.next_settle_at == pytest.approx(t0 + SETTLE)
    # Still growing: the clock restarts, even though the mtime is old by then.
    with photo.open("ab") as out:
        out.write(b"more")
    assert scanner.scan(t0 + 0.8).pending == (photo,)
    assert scanner.scan(t0 + 0.8 + SETTLE - 0.1).pending == (photo,)
    settled = scanner.scan(t0 + 0.8 + SETTLE)
    assert [p.path for p in settled.photos] == [photo]
    assert settled.pending == ()


def test_a_fresh_file_settles_by_its_mtime(tmp_path: Path) -> None:
    scanner = FolderScanner(tmp_path, SETTLE)
    t0 = time.time()
    photo = _write(tmp_path / "alice" / "new.jpg", age=0)
    assert scanner.scan(t0).pending == (photo,)
    assert len(scanner.scan(t0 + SETTLE).photos) == 1


def test_an_old_file_is_taken_at_first_sight(tmp_path: Path) -> None:
    _write(tmp_path / "alice" / "old.jpg", age=60)
    scan = FolderScanner(tmp_path, SETTLE).scan(time.time())
    assert len(scan.photos) == 1


def test_a_future_mtime_must_be_watched(tmp_path: Path) -> None:
    photo = _write(tmp_path / "alice" / "skewed.jpg", age=-3600)  # clock skew on a share
    scanner = FolderScanner(tmp_path, SETTLE)
    now = time.time()
    assert scanner.scan(now).pending == (photo,)
    assert len(scanner.scan(now + SETTLE).photos) == 1


def test_stray_and_odd_entries_are_reported(tmp_path: Path) -> None:
    _write(tmp_path / "loose.jpg")
    _write(tmp_path / "alice" / "notes.txt")
    _write(tmp_path / "alice" / "holiday" / "1.jpg")
    _write(tmp_path / "alice" / "not" / "deeper" / "1.jpg")
    os.mkfifo(tmp_path / "alice" / "pipe.jpg")
    (tmp_path / "alice" / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    reasons = _reasons(FolderScanner(tmp_path, SETTLE).scan(time.time()))
    assert "not inside a person folder" in reasons["loose.jpg"]
    assert "not a photo" in reasons["notes.txt"]
    assert "sub-folder ignored" in reasons["holiday"]
    assert "sub-folder ignored" in reasons["deeper"]
    assert reasons["pipe.jpg"] == "not a regular file"
    assert reasons["dangling.jpg"] == "broken symlink"


def test_symlinks_outside_the_gallery_are_rejected(tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"
    outside = _write(tmp_path / "secret" / "passport.jpg")
    _write(gallery / "alice" / "1.jpg")
    (gallery / "alice" / "2.jpg").symlink_to(outside)
    (gallery / "mallory").symlink_to(outside.parent, target_is_directory=True)
    (gallery / "alice" / "3.jpg").symlink_to(gallery / "alice" / "1.jpg")  # inside: fine
    scan = FolderScanner(gallery, SETTLE).scan(time.time())
    reasons = _reasons(scan)
    assert reasons["2.jpg"].startswith("symlink points outside the gallery")
    assert reasons["mallory"].startswith("symlink points outside the gallery")
    assert sorted(p.path.name for p in scan.photos) == ["1.jpg", "3.jpg"]


def test_missing_gallery_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    scan = FolderScanner(tmp_path / "absent", SETTLE).scan(time.time())
    assert scan.photos == ()
    assert scan.problems[0].reason == "gallery folder does not exist"


def test_person_names_are_unicode_nfc(tmp_path: Path) -> None:
    _write(tmp_path / unicodedata.normalize("NFD", "José Ñandú") / "1.jpg")
    _write(tmp_path / "王小明" / "1.jpg")
    scan = FolderScanner(tmp_path, SETTLE).scan(time.time())
    assert scan.people == tuple(sorted(["José Ñandú", "王小明"]))
    assert {p.person for p in scan.photos} == {"José Ñandú", "王小明"}


def test_symlink_flip_of_the_root_swaps_everything(tmp_path: Path) -> None:
    _write(tmp_path / "v1" / "alice" / "1.jpg")
    _write(tmp_path / "v2" / "bob" / "1.jpg")
    root = tmp_path / "gallery"
    root.symlink_to(tmp_path / "v1")
    scanner = FolderScanner(root, SETTLE)
    assert scanner.scan(time.time()).people == ("alice",)
    flip = tmp_path / "gallery.new"
    flip.symlink_to(tmp_path / "v2")
    flip.replace(root)
    scan = scanner.scan(time.time())
    assert scan.people == ("bob",)
    assert scan.photos[0].path == root / "bob" / "1.jpg"


def _scan_as_nobody(root: str, queue: multiprocessing.Queue[object]) -> None:
    os.setgid(65534)
    os.setuid(65534)
    scan = FolderScanner(Path(root), SETTLE).scan(time.time())
    queue.put(([p.path.name for p in scan.photos], _reasons(scan)))


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    """chmod 000 means nothing to root, so as root the scan runs in a child that drops to nobody."""
    root = Path(tempfile.mkdtemp(prefix="edgeface-unreadable-"))
    try:
        os.chmod(root, 0o755)
        _write(root / "alice" / "ok.jpg")
        os.chmod(root / "alice", 0o755)
        os.chmod(root / "alice" / "ok.jpg", 0o644)
        locked = _write(root / "alice" / "locked.jpg")
        os.chmod(locked, 0o000)
        if os.geteuid() != 0:
            scan = FolderScanner(root, SETTLE).scan(time.time())
            photos, reasons = [p.path.name for p in scan.photos], _reasons(scan)
        else:
            ctx = multiprocessing.get_context("fork")
            queue: multiprocessing.Queue[object] = ctx.Queue()
            child = ctx.Process(target=_scan_as_nobody, args=(str(root), queue))
            child.start()
            result = queue.get(timeout=20)
            child.join(timeout=20)
            photos, reasons = result  # type: ignore[misc]
        assert photos == ["ok.jpg"]
        assert reasons == {"locked.jpg": "cannot be read (permission denied)"}
    finally:
        for path in sorted(root.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        root.rmdir()
