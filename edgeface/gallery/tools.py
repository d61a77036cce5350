"""Tools for the people who keep the gallery: enroll, list, check.

Owns: checking photos before they enter the gallery and copying them in atomically (temp name,
then a no-clobber rename, mode 0640), the gallery listing, the "who looks like whom" check with
a leave-one-out rank-1 accuracy, plain-text renderings of both, and a simple progress bar.
Never: parses command lines or exits the process (the CLI does), or changes existing photos.
"""

from __future__ import annotations

import hashlib
import os
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import GalleryConfig
from edgeface.errors import EdgefaceError
from edgeface.gallery.folder import PHOTO_SUFFIXES, is_temporary_name, person_name
from edgeface.gallery.store import (
    Gallery,
    GalleryReport,
    GalleryUpdate,
    ProgressCallback,
    analyse_image,
    judge_analysis,
)
from edgeface.images import load_image

PHOTO_MODE = 0o640
PERSON_DIR_MODE = 0o750
# The longest file name (in bytes) Linux file systems accept (NAME_MAX): the name is a folder.
MAX_NAME_BYTES = 255


class EnrollResult(NamedTuple):
    photo: Path
    ok: bool
    reason: str  # why it was refused, or where it was copied to


# Control characters, line/paragraph separators and lone surrogates (undecodable bytes in argv):
# a name holding one would print on two lines, or as garbage, in every listing and event.
_FORBIDDEN_IN_NAMES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def check_person_name(name: str) -> str:
    """The person for `name` (NFC, as the gallery scan names folders), or a one-line error."""
    if any(unicodedata.category(c) in _FORBIDDEN_IN_NAMES for c in name):
        raise EdgefaceError(
            f"person name {name!r}: must not contain control characters or line breaks"
        )
    cleaned = person_name(name.strip())
    if not cleaned:
        raise EdgefaceError("person name: must not be empty")
    if "/" in cleaned or "\0" in cleaned or (os.sep != "/" and os.sep in cleaned):
        raise EdgefaceError(f"person name {name!r}: must not contain '/'")
    if len(cleaned.encode("utf-8")) > MAX_NAME_BYTES:
        raise EdgefaceError(
            f"person name {cleaned[:40]!r}...: {len(cleaned.encode('utf-8'))} bytes long,"
            f" at most {MAX_NAME_BYTES} (it becomes a folder name)"
        )
    if cleaned in (".", "..") or is_temporary_name(cleaned):
        raise EdgefaceError(
            f"person name {name!r}: must not start with '.' or '~' or end with .tmp/.part"
            " (sync tools use such names for unfinished files)"
        )
    return cleaned


def enroll(
    gallery_dir: Path,
    name: str,
    photos: Sequence[Path],
    analyzer: FaceAnalyzer,
    cfg: GalleryConfig,
    progress: ProgressCallback | None = None,
) -> list[EnrollResult]:
    """Copy each photo with exactly one usable face into GALLERY/<name>/; refuse the others.

    Raises EdgefaceError only for a bad name or an unusable gallery folder; a bad photo is a
    refused result, never an exception.
    """
    folder = enroll_folder(Path(gallery_dir), name)
    results: list[EnrollResult] = []
    for done, photo in enumerate(photos, start=1):
        photo = Path(photo)
        refusal = _check_photo(photo, analyzer, cfg)
        if refusal is not None:
            results.append(EnrollResult(photo, False, refusal))
        else:
            results.append(_copy_in(photo, folder))
        if progress is not None:
            progress(done, len(photos), photo)
    return results


def enroll_folder(gallery_dir: Path, name: str) -> Path:
    """The person folder photos of `name` go to, or a one-line error (bad name or gallery).

    The gallery folder itself is created at the first enrollment, but never its parents (a
    mistyped path must not silently grow a tree). A person folder already there under another
    Unicode spelling of the name (NFD, as synced from macOS) is the same person and is reused.
    """
    person = check_person_name(name)
    if gallery_dir.exists() and not gallery_dir.is_dir():
        raise EdgefaceError(f"{gallery_dir}: gallery path is not a folder")
    if not gallery_dir.exists() and not gallery_dir.absolute().parent.is_dir():
        raise EdgefaceError(
            f"gallery {gallery_dir}: no such folder, and its parent"
            f" {gallery_dir.absolute().parent} does not exist either"
        )
    if not (gallery_dir / person).is_dir() and gallery_dir.is_dir():
        for entry in sorted(gallery_dir.iterdir()):
            if entry.is_dir() and person_name(entry.name) == person:
                return entry
    return gallery_dir / person


def _check_photo(photo: Path, analyzer: FaceAnalyzer, cfg: GalleryConfig) -> str | None:
    if photo.suffix.lower() not in PHOTO_SUFFIXES:
        return f"not a .jpg, .jpeg, .png or .webp file ({photo.suffix or 'no extension'})"
    try:
        image = load_image(photo)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except EdgefaceError as exc:
        return str(exc).removeprefix(f"{photo}: ")
    analysis = analyse_image(analyzer, image)
    if analysis.faces > 1:
        return f"{analysis.faces} faces found, expected exactly one (crop the photo to one face)"
    reason, _ = judge_analysis(analysis, cfg)
    return reason


def _copy_in(photo: Path, folder: Path) -> EnrollResult:
    try:
        data = photo.read_bytes()
        folder.parent.mkdir(mode=PERSON_DIR_MODE, exist_ok=True)  # the gallery; never its parents
        folder.mkdir(mode=PERSON_DIR_MODE, exist_ok=True)
        sha = hashlib.sha256(data).hexdigest()
        for existing in sorted(folder.iterdir()):
            if (
                existing.is_file()
                and existing.stat().st_size == len(data)
                and hashlib.sha256(existing.read_bytes()).hexdigest() == sha
            ):
                return EnrollResult(photo, True, f"already enrolled as {existing}")
        # A dotfile temp name: the gallery scanner ignores it until the final rename.
        tmp = folder / f".enroll-{os.getpid()}-{sha[:12]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PHOTO_MODE)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, PHOTO_MODE)
            destination = _link_unique(tmp, folder, photo)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(folder)
    except OSError as exc:
        return EnrollResult(photo, False, f"cannot copy into {folder} ({exc.strerror or exc})")
    return EnrollResult(photo, True, f"copied to {destination}")


def _link_unique(tmp: Path, folder: Path, photo: Path) -> Path:
    """Give tmp its final name without ever replacing an existing photo."""
    stem, suffix = photo.stem, photo.suffix.lower()
    if is_temporary_name(stem + suffix):
        stem = stem.lstrip(".~") or "photo"
    for n in range(1, 1000):
        candidate = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        try:
            os.link(tmp, candidate)  # atomic and fails if the name is taken
            return candidate
        except FileExistsError:
            continue
        except OSError:
            # No hard links (FAT, some network shares): check, then rename (tiny race window).
            if candidate.exists():
                continue
            os.replace(tmp, candidate)
            return candidate
    raise OSError(f"no free file name for {photo.name}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- list -----------------------------------------------------------------------------------


def gallery_list(gallery: Gallery, now: float) -> GalleryReport:
    """People, photo counts, usable counts and problems (analysing what is not cached)."""
    return gallery.refresh(now).report


def format_list(report: GalleryReport) -> str:
    lines = [f"gallery {report.root}: {len(report.people)} people"]
    width = max([len(p.name) for p in report.people] + [6])
    lines.append(f"  {'person':<{width}}  photos  usable  negatives")
    for p in report.people:
        neg = f"{p.usable_negatives}/{p.negatives}" if p.negatives else "-"
        lines.append(f"  {p.name:<{width}}  {p.photos:>6}  {p.usable:>6}  {neg:>9}")
    lines.extend(_problem_lines(report))
    return "\n".join(lines)


def _problem_lines(report: GalleryReport) -> list[str]:
    lines: list[str] = []
    if report.problems:
        lines.append(f"problems ({len(report.problems)}):")
        lines.extend(f"  {p.path}: {p.reason}" for p in report.problems)
    if report.warnings:
        lines.append(f"warnings ({len(report.warnings)}):")
        lines.extend(f"  {p.path}: {p.reason}" for p in report.warnings)
    if report.pending:
        lines.append(f"still being written ({len(report.pending)}):")
        lines.extend(f"  {p}" for p in report.pending)
    return lines


# -- check ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonCheck:
    name: str
    photos: int
    usable: int
    nearest: str | None  # the most similar other person (best template pair)
    similarity: float | None
    too_similar: bool  # similarity at or above the match threshold


@dataclass(frozen=True)
class Misidentified:
    path: Path
    person: str
    predicted: str
    score: float


@dataclass(frozen=True)
class CheckReport:
    report: GalleryReport
    people: tuple[PersonCheck, ...]
    match_threshold: float
    loo_total: int  # templates of people with at least two usable photos
    loo_correct: int
    loo_accepted: int  # correct and at or above the match threshold
    misidentified: tuple[Misidentified, ...]

    @property
    def loo_accuracy(self) -> float | None:
        return self.loo_correct / self.loo_total if self.loo_total else None


def gallery_check(gallery: Gallery, now: float) -> CheckReport:
    """Refresh, then compare every person with every other one and run leave-one-out."""
    return check_update(gallery.refresh(now), gallery.thresholds.match)


def check_update(update: GalleryUpdate, match_threshold: float) -> CheckReport:
    positives = sorted((t for t in update.templates if not t.negative), key=lambda t: t.person)
    people = sorted({t.person for t in positives})
    index = {name: i for i, name in enumerate(people)}
    labels = np.array([index[t.person] for t in positives], dtype=np.intp)
    nearest: dict[str, tuple[str, float]] = {}
    loo_total = loo_correct = loo_accepted = 0
    wrong: list[Misidentified] = []
    if positives:
        matrix = np.stack([t.embedding for t in positives]).astype(np.float32)
        starts = np.searchsorted(labels, np.arange(len(people)))
        # Row blocks keep memory at block x N even for a very large gallery.
        for first in range(0, len(matrix), 512):
            block = matrix[first : first + 512] @ matrix.T
            rows = np.arange(len(block))
            block[rows, first + rows] = -np.inf  # leave each template out of its own search
            per_person = np.maximum.reduceat(block, starts, axis=1)  # best template per person
            own = labels[first + rows]
            others = per_person.copy()
            others[rows, own] = -np.inf
            for r in rows:
                i = first + int(r)
                me = people[own[r]]
                if len(people) > 1:
                    j = int(np.argmax(others[r]))
                    best = nearest.get(me)
                    if best is None or others[r, j] > best[1]:
                        nearest[me] = (people[j], float(others[r, j]))
                if not np.isfinite(per_person[r, own[r]]):
                    continue  # the only usable photo of this person: nothing to find
                loo_total += 1
                predicted = int(np.argmax(per_person[r]))
                score = float(per_person[r, predicted])
                if predicted == own[r]:
                    loo_correct += 1
                    loo_accepted += int(score >= match_threshold)
                else:
                    t = positives[i]
                    wrong.append(Misidentified(t.path, t.person, people[predicted], score))
    checks = []
    for p in update.report.people:
        near = nearest.get(p.name)
        checks.append(
            PersonCheck(
                name=p.name,
                photos=p.photos,
                usable=p.usable,
                nearest=near[0] if near else None,
                similarity=near[1] if near else None,
                too_similar=bool(near and near[1] >= match_threshold),
            )
        )
    return CheckReport(
        report=update.report,
        people=tuple(checks),
        match_threshold=match_threshold,
        loo_total=loo_total,
        loo_correct=loo_correct,
        loo_accepted=loo_accepted,
        misidentified=tuple(wrong),
    )


def format_check(check: CheckReport) -> str:
    width = max([len(p.name) for p in check.people] + [6])
    lines = [
        f"gallery {check.report.root}: {len(check.people)} people,"
        f" match threshold {check.match_threshold:g}",
        f"  {'person':<{width}}  usable/photos  most similar other person",
    ]
    for p in check.people:
        near = (
            f"{p.nearest} ({p.similarity:.3f})" if p.nearest and p.similarity is not None else "-"
        )
        flag = "  TOO SIMILAR" if p.too_similar else ""
        lines.append(f"  {p.name:<{width}}  {p.usable:>6}/{p.photos:<6}  {near}{flag}")
    if check.loo_accuracy is None:
        lines.append("leave-one-out: needs a person with at least two usable photos")
    else:
        lines.append(
            f"leave-one-out rank-1 accuracy: {check.loo_accuracy:.1%}"
            f" ({check.loo_correct}/{check.loo_total}; {check.loo_accepted} at or above the"
            " match threshold)"
        )
    lines.extend(
        f"  {m.path}: {m.person} looks most like {m.predicted} ({m.score:.3f})"
        for m in check.misidentified
    )
    lines.extend(_problem_lines(check.report))
    return "\n".join(lines)


# -- progress -------------------------------------------------------------------------------


class ProgressBar:
    """A one-line text progress bar for ProgressCallback; silent when not on a terminal."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = self.stream.isatty()

    def __call__(self, done: int, total: int, path: Path) -> None:
        if not self.enabled or total <= 0:
            return
        filled = round(self.width * done / total)
        bar = "#" * filled + "." * (self.width - filled)
        end = "\n" if done >= total else ""
        self.stream.write(f"\r[{bar}] {done}/{total} {path.name[:40]:<40}{end}")
        self.stream.flush()
