"""The gallery folder contract and scanning it safely.

Contract::

    GALLERY/<person>/<photo>.{jpg,jpeg,png,webp}      enrolled photos of <person>
    GALLERY/<person>/not/<photo>.{jpg,jpeg,png,webp}  negatives: faces that must never match <person>
    GALLERY/<person>/person.yaml                      reserved for metadata (not read yet)

The person is the folder name as written (any Unicode, normalised to NFC so a name synced from
macOS, which stores NFD, is the same person). Temporary names written by sync tools and editors
(dotfiles such as `.syncthing.*` and rsync's `.~tmp~`, `*.tmp`, `*.part`, `~*`) are skipped
silently; a file is only taken once its size and mtime have been stable for `settle_seconds`.

Owns: walking the folder with `stat` only, the temporary-name rules, settling, and reporting entries
that can never be photos (symlinks leaving the gallery, unreadable or special files, stray files).
Never: opens or decodes images, or keeps anything but the settle bookkeeping between scans.
"""

from __future__ import annotations

import logging
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
NEGATIVES_DIR = "not"
METADATA_FILE = "person.yaml"
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")


def is_temporary_name(name: str) -> bool:
    """Names sync tools and editors use for files that are still being written."""
    lowered = name.lower()
    return name.startswith((".", "~")) or lowered.endswith(_TEMP_SUFFIXES)


def person_name(folder_name: str) -> str:
    return unicodedata.normalize("NFC", folder_name)


@dataclass(frozen=True)
class Signature:
    """What must stay equal for a file to count as unchanged (inode catches a swapped folder)."""

    device: int
    inode: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class PhotoEntry:
    """A settled photo file: `path` is as seen under the gallery root (not resolved)."""

    path: Path
    person: str
    size: int
    mtime: float
    signature: Signature
    negative: bool = False

    def relative_to(self, root: Path) -> str:
        return self.path.relative_to(root).as_posix()


@dataclass(frozen=True)
class Problem:
    """An entry that cannot be used, with a one-line reason (the path is not repeated in it)."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class GalleryScan:
    root: Path
    resolved_root: Path | None
    people: tuple[str, ...]
    photos: tuple[PhotoEntry, ...]
    problems: tuple[Problem, ...]
    pending: tuple[Path, ...] = ()
    # Wall-clock time at which the earliest pending file would settle if left alone.
    next_settle_at: float | None = None


@dataclass
class _Seen:
    signature: Signature
    since: float
    # False once the file was seen changing: from then on only watching it settles it.
    trust_mtime: bool = True


@dataclass
class _ScanBuilder:
    people: list[str] = field(default_factory=list)
    photos: list[PhotoEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    pending: list[Path] = field(default_factory=list)
    next_settle_at: float | None = None


class FolderScanner:
    """Scans one gallery root; remembers when each file's signature was first seen, for settling.

    `now` is wall-clock seconds (time.time()): it is compared with file mtimes.
    """

    def __init__(self, root: Path, settle_seconds: float) -> None:
        self.root = Path(root)
        self.settle_seconds = settle_seconds
        self._seen: dict[Path, _Seen] = {}

    def scan(self, now: float) -> GalleryScan:
        out = _ScanBuilder()
        seen_now: dict[Path, _Seen] = {}
        try:
            # Resolve every scan: a symlink flip of the root swaps the whole gallery at once.
            resolved = self.root.resolve(strict=True)
            if not resolved.is_dir():
                raise NotADirectoryError(str(self.root))
        except FileNotFoundError:
            out.problems.append(Problem(self.root, "gallery folder does not exist"))
            resolved = None
        except NotADirectoryError:
            out.problems.append(Problem(self.root, "gallery path is not a folder"))
            resolved = None
        except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop on older Pythons
            out.problems.append(Problem(self.root, f"gallery folder cannot be opened ({exc})"))
            resolved = None
        if resolved is not None:
            self._scan_root(resolved, now, out, seen_now)
        self._seen = seen_now
        return GalleryScan(
            root=self.root,
            resolved_root=resolved,
            people=tuple(sorted(set(out.people))),
            photos=tuple(sorted(out.photos, key=lambda p: str(p.path))),
            problems=tuple(out.problems),
            pending=tuple(sorted(out.pending)),
            next_settle_at=out.next_settle_at,
        )

    def _scan_root(
        self, resolved: Path, now: float, out: _ScanBuilder, seen_now: dict[Path, _Seen]
    ) -> None:
        for entry in _list_dir(self.root, out):
            path = self.root / entry.name
            if is_temporary_name(entry.name):
                continue
            kind = _kind(path, resolved, out)
            if kind == "dir":
                person = person_name(entry.name)
                out.people.append(person)
                self._scan_person(path, person, resolved, now, out, seen_now)
            elif kind == "file":
                out.problems.append(
                    Problem(path, "not inside a person folder (expected GALLERY/<person>/<photo>)")
                )

    def _scan_person(
        self,
        folder: Path,
        person: str,
        resolved: Path,
        now: float,
        out: _ScanBuilder,
        seen_now: dict[Path, _Seen],
        negative: bool = False,
    ) -> None:
        for entry in _list_dir(folder, out):
            path = folder / entry.name
            if is_temporary_name(entry.name):
                continue
            kind = _kind(path, resolved, out)
            if kind == "dir":
                if not negative and entry.name == NEGATIVES_DIR:
                    self._scan_person(path, person, resolved, now, out, seen_now, negative=True)
                else:
                    out.problems.append(
                        Problem(
                            path, "sub-folder ignored (only a 'not' folder of negatives is read)"
                        )
                    )
                continue
            if kind != "file":
                continue
            if Path(entry.name).suffix.lower() not in PHOTO_SUFFIXES:
                if not (entry.name == METADATA_FILE and not negative):
                    out.problems.append(
                        Problem(path, "not a photo (expected .jpg, .jpeg, .png or .webp)")
                    )
                continue
            self._consider(path, person, negative, now, out, seen_now)

    def _consider(
        self,
        path: Path,
        person: str,
        negative: bool,
        now: float,
        out: _ScanBuilder,
        seen_now: dict[Path, _Seen],
    ) -> None:
        try:
            st = path.stat()
        except OSError as exc:  # vanished between listing and stat: the next scan settles it
            log.debug("%s: stat failed (%s)", path, exc)
            return
        signature = Signature(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        previous = self._seen.get(path)
        if previous is None:
            seen = _Seen(signature, now)
        elif previous.signature != signature:
            seen = _Seen(signature, now, trust_mtime=False)
        else:
            seen = previous
        seen_now[path] = seen
        since = seen.since
        mtime = st.st_mtime
        # Stable if watched unchanged long enough, or last written long enough ago by its mtime.
        # A file seen changing is in progress whatever its mtime says (a lagging server clock),
        # and a future mtime (clock skew the other way) must be watched instead.
        old_enough = seen.trust_mtime and mtime <= now and now - mtime >= self.settle_seconds
        watched_long_enough = now - since >= self.settle_seconds
        if not (old_enough or watched_long_enough):
            out.pending.append(path)
            settle_at = since + self.settle_seconds
            if out.next_settle_at is None or settle_at < out.next_settle_at:
                out.next_settle_at = settle_at
            return
        if not os.access(path, os.R_OK):
            out.problems.append(Problem(path, "cannot be read (permission denied)"))
            return
        out.photos.append(PhotoEntry(path, person, st.st_size, mtime, signature, negative))


def _list_dir(folder: Path, out: _ScanBuilder) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except FileNotFoundError:  # removed while scanning: the next scan sees the new state
        return []
    except OSError as exc:
        out.problems.append(Problem(folder, f"folder cannot be read ({exc.strerror or exc})"))
        return []


def _kind(path: Path, resolved_root: Path, out: _ScanBuilder) -> str:
    """'dir', 'file' or 'skip' (already reported); symlinks must stay inside the gallery."""
    try:
        if path.is_symlink():
            try:
                target = path.resolve(strict=True)
            except FileNotFoundError:
                out.problems.append(Problem(path, "broken symlink"))
                return "skip"
            except (OSError, RuntimeError):
                out.problems.append(Problem(path, "symlink cannot be resolved (loop?)"))
                return "skip"
            if not target.is_relative_to(resolved_root):
                out.problems.append(Problem(path, f"symlink points outside the gallery ({target})"))
                return "skip"
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "skip"
    except OSError as exc:
        out.problems.append(Problem(path, f"cannot be read ({exc.strerror or exc})"))
        return "skip"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    # FIFOs and devices would block or stream forever if opened.
    out.problems.append(Problem(path, "not a regular file"))
    return "skip"
