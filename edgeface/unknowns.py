"""Unknown visitors, kept (opt-in) so that someone can be enrolled by naming a group of crops.

Owns: `STATE/unknowns/`, holding for each unknown track its best face crop (the one with the
highest vote weight) as `<key>.jpg` and its embedding and times as `<key>.json` (files 0600, the
folder 0700: these are photos of people who did not consent to being enrolled); expiring them
after `retention_seconds`; grouping them into clusters of one visitor each; moving a
cluster into `GALLERY/<name>/` so the gallery watcher enrolls that person; and, when the name is
someone already enrolled, scoring the cluster against their photos (`merge_check`) so that a
stranger is never merged into them without `--merge`.

Clusters are computed when asked for, from the files alone (greedy, oldest crop first: a crop
joins the cluster whose mean embedding is most similar if that similarity reaches
`cluster_threshold`, else starts a new one), so a cluster id (a hash of its oldest crop's key)
is the same in `edgeface unknown list` and a later `edgeface unknown name` as long as that crop
has not expired.

Never: decides who is unknown (the daemon passes what the engine decided), runs models, or
writes into the gallery except through `name_cluster`, which moves a complete folder in with one
rename (or adds files one rename each when the person already exists).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edgeface.config import Config, load_config
from edgeface.errors import EdgefaceError
from edgeface.gallery.matcher import Thresholds
from edgeface.gallery.store import Template
from edgeface.gallery.tools import PERSON_DIR_MODE, PHOTO_MODE, check_person_name, enroll_folder
from edgeface.types import Box, Embedding, ImageBGR

log = logging.getLogger(__name__)

DIR_NAME = "unknowns"
FILE_MODE = 0o600
DIR_MODE = 0o700
JPEG_QUALITY = 92
# A crop around the face box this many times its side: the gallery re-detects the face in it.
CROP_SCALE = 1.8


@dataclass(frozen=True)
class UnknownCrop:
    key: str
    track_id: int
    first_seen: float
    last_seen: float
    weight: float
    embedding: Embedding
    path: Path  # the JPEG


@dataclass(frozen=True)
class Cluster:
    id: str
    crops: tuple[UnknownCrop, ...]  # oldest first

    @property
    def best(self) -> UnknownCrop:
        return max(self.crops, key=lambda c: c.weight)

    @property
    def first_seen(self) -> float:
        return min(c.first_seen for c in self.crops)

    @property
    def last_seen(self) -> float:
        return max(c.last_seen for c in self.crops)


def enrollment_crop(image: ImageBGR, box: Box, scale: float = CROP_SCALE) -> ImageBGR:
    """A square cut around the face with room around it (a tight crop can defeat the detector)."""
    side = max(box.w, box.h) * scale
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    x0, y0 = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
    x1 = int(min(cx + side / 2, image.shape[1]))
    y1 = int(min(cy + side / 2, image.shape[0]))
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def cluster_id(first_key: str) -> str:
    return "u" + hashlib.sha256(first_key.encode()).hexdigest()[:8]


class UnknownStore:
    """The unknown-visitor folder of one daemon. `add` from the pipeline thread, the rest anywhere
    the process owns the folder (the CLI uses it while the daemon runs: every file appears by
    rename, and a half-written pair is ignored)."""

    def __init__(
        self,
        state_dir: Path,
        retention_seconds: float,
        cluster_threshold: float,
        clock: Callable[[], float] = time.time,
        max_crops: int = 1000,
    ) -> None:
        if retention_seconds <= 0:
            raise ValueError("retention_seconds must be positive")
        self.root = Path(state_dir) / DIR_NAME
        self.retention = retention_seconds
        self.threshold = cluster_threshold
        self.clock = clock
        self.max_crops = max_crops
        self._tracks: dict[int, tuple[str, float, float]] = {}  # track -> key, weight, first seen
        # add() runs on the pipeline thread, expire() on the heartbeat: both touch _tracks.
        self._lock = threading.Lock()

    def _ensure_dir(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        self.root.chmod(DIR_MODE)

    # -- the daemon side ----------------------------------------------------------------------

    def add(
        self, track_id: int, embedding: Embedding, crop_bgr: ImageBGR, weight: float, ts: float
    ) -> bool:
        """Keep this crop if it is the track's first or better (higher weight) than the kept one.

        Returns True when it was written. Never raises for a full or unwritable disk: the daemon
        must keep recognising, so that is logged and False returned.
        """
        with self._lock:
            known = self._tracks.get(track_id)
        if known is not None and weight <= known[1]:
            return False
        key = known[0] if known else f"{int(ts * 1000):013d}-{os.getpid()}-{track_id}"
        first_seen = known[2] if known else ts
        ok, jpeg = cv2.imencode(".jpg", crop_bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return False
        record = {
            "track_id": track_id,
            "first_seen": round(first_seen, 3),
            "last_seen": round(ts, 3),
            "weight": round(float(weight), 6),
            "embedding": [round(float(v), 7) for v in np.asarray(embedding).ravel()],
        }
        try:
            self._ensure_dir()
            # The JPEG first: the JSON is what makes the pair visible to readers.
            _write_private(self.root / f"{key}.jpg", jpeg.tobytes())
            _write_private(self.root / f"{key}.json", json.dumps(record).encode())
        except OSError as exc:
            log.warning("unknowns: cannot keep a crop in %s (%s)", self.root, exc.strerror or exc)
            return False
        with self._lock:
            self._tracks[track_id] = (key, float(weight), first_seen)
        return True

    def expire(self, now: float | None = None) -> int:
        """Delete crops last seen more than `retention_seconds` ago (and the oldest beyond
        `max_crops`); returns how many went."""
        now = self.clock() if now is None else now
        crops = self.crops()
        old = [c for c in crops if now - c.last_seen > self.retention]
        keep = [c for c in crops if now - c.last_seen <= self.retention]
        if len(keep) > self.max_crops:
            old += keep[: len(keep) - self.max_crops]
        for crop in old:
            self._delete(crop.key)
        self._tracks = {t: v for t, v in self._tracks.items() if now - v[2] <= self.retention * 2}
        self._remove_orphans(now)
        return len(old)

    # -- reading and naming ---------------------------------------------------------------------

    def crops(self) -> list[UnknownCrop]:
        """Every complete crop, oldest first; damaged records are skipped (and expire later)."""
        if not self.root.is_dir():
            return []
        crops = []
        for meta in self.root.glob("*.json"):
            jpg = meta.with_suffix(".jpg")
            try:
                record = json.loads(meta.read_text())
                embedding = np.asarray(record["embedding"], dtype=np.float32)
                crop = UnknownCrop(
                    key=meta.stem,
                    track_id=int(record["track_id"]),
                    first_seen=float(record["first_seen"]),
                    last_seen=float(record["last_seen"]),
                    weight=float(record["weight"]),
                    embedding=embedding / max(float(np.linalg.norm(embedding)), 1e-12),
                    path=jpg,
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if jpg.is_file():
                crops.append(crop)
        return sorted(crops, key=lambda c: (c.first_seen, c.key))

    def clusters(self) -> list[Cluster]:
        """Groups of crops of one visitor each, largest first, then most recent first."""
        groups: list[list[UnknownCrop]] = []
        sums: list[npt.NDArray[np.float32]] = []
        for crop in self.crops():
            best, best_sim = -1, -2.0
            for i, total in enumerate(sums):
                sim = float(total @ crop.embedding) / max(float(np.linalg.norm(total)), 1e-12)
                if sim > best_sim:
                    best, best_sim = i, sim
            if best >= 0 and best_sim >= self.threshold:
                groups[best].append(crop)
                sums[best] = sums[best] + crop.embedding
            else:
                groups.append([crop])
                sums.append(crop.embedding.copy())
        clusters = [Cluster(cluster_id(g[0].key), tuple(g)) for g in groups]
        return sorted(clusters, key=lambda c: (-len(c.crops), -c.last_seen))

    def cluster(self, cluster: str) -> Cluster:
        """The cluster with this id, or a one-line error saying it may have expired."""
        found = [c for c in self.clusters() if c.id == cluster]
        if not found:
            raise EdgefaceError(
                f"unknown cluster {cluster!r}: not found (it may have expired;"
                " run `edgeface unknown list`)"
            )
        return found[0]

    def name_cluster(self, cluster: str, name: str, gallery_dir: Path) -> list[Path]:
        """Move the cluster's crops into GALLERY/<name>/ and return their new paths.

        A new person's folder appears complete with one rename (the watcher never sees half of
        it); for an existing person each photo arrives with its own rename. Whether the crops
        belong to an existing person is the caller's question (`merge_check`).
        """
        gallery_dir = Path(gallery_dir)
        if not gallery_dir.is_dir():
            raise EdgefaceError(f"gallery {gallery_dir}: no such folder")
        target = enroll_folder(gallery_dir, name)  # the existing folder, whatever its spelling
        crops = self.cluster(cluster).crops
        # A dotted name in the gallery itself: ignored by the scanner, and on the same file
        # system as the target, so the final rename is atomic.
        staging = gallery_dir / f".edgeface-unknown-{cluster}-{os.getpid()}.tmp"
        staging.mkdir(mode=PERSON_DIR_MODE)
        try:
            for crop in crops:
                _copy_durably(crop.path, staging / f"unknown-{crop.key}.jpg")
            _fsync_dir(staging)
            try:
                # rename() onto an existing empty folder would succeed: only take a free name.
                if target.exists():
                    raise FileExistsError(target)
                staging.rename(target)
                moved = sorted(target.iterdir())
            except OSError as exc:
                if not (isinstance(exc, FileExistsError) or exc.errno == errno.ENOTEMPTY):
                    raise
                moved = []
                for photo in sorted(staging.iterdir()):
                    destination = target / photo.name
                    if destination.exists():
                        continue
                    photo.rename(destination)
                    moved.append(destination)
            _fsync_dir(gallery_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for crop in crops:
            self._delete(crop.key)
        return moved

    # -- files ------------------------------------------------------------------------------------

    def _delete(self, key: str) -> None:
        for suffix in (".json", ".jpg"):  # the record first: a lone JPEG is an orphan
            with contextlib.suppress(FileNotFoundError):
                (self.root / f"{key}{suffix}").unlink()

    def _remove_orphans(self, now: float) -> None:
        """JPEGs without a record (a crash between the two writes) once they are old."""
        if not self.root.is_dir():
            return
        for jpg in self.root.glob("*.jpg"):
            with contextlib.suppress(OSError):
                if (
                    not jpg.with_suffix(".json").exists()
                    and now - jpg.stat().st_mtime > self.retention
                ):
                    jpg.unlink()
        for tmp in self.root.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > 3600:
                    tmp.unlink()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, FILE_MODE)  # O_CREAT's mode does not apply to an existing temp file
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _copy_durably(source: Path, destination: Path) -> None:
    data = source.read_bytes()
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PHOTO_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    # The crop was taken hours ago: backdate it so the gallery does not wait to settle it.
    os.utime(destination, (source.stat().st_mtime, source.stat().st_mtime))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- CLI (wired as `edgeface unknown list` / `edgeface unknown name CLUSTER NAME`) -----------------


def format_clusters(clusters: list[Cluster], now: float) -> str:
    if not clusters:
        return "no unknown visitors kept (is unknowns.enabled on, and has anyone come by?)"
    lines = []
    for c in clusters:
        ago = _ago(now - c.last_seen)
        lines.append(
            f"{c.id}  {len(c.crops)} visit(s), last {ago} ago,"
            f" first {time.strftime('%Y-%m-%d %H:%M', time.localtime(c.first_seen))}"
            f"  best crop: {c.best.path}"
        )
    lines.append("enroll one with: edgeface unknown name CLUSTER 'Their Name'")
    return "\n".join(lines)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


@dataclass(frozen=True)
class MergeCheck:
    """How a cluster's crops score against the enrolled photos of an existing person."""

    person: str
    scores: tuple[float, ...]  # per crop with a face: its best similarity to one of their photos
    thresholds: Thresholds

    @property
    def median(self) -> float | None:
        return float(np.median(self.scores)) if self.scores else None

    @property
    def matches(self) -> bool:
        """The typical crop is recognised as this person (at or above the match threshold)."""
        return self.median is not None and self.median >= self.thresholds.match

    def describe(self) -> str:
        t = self.thresholds
        limits = f"match threshold {t.match:.2f}, unknown below {t.unknown:.2f}"
        if not self.scores:
            return f"no face found again in the crops to compare with {self.person} ({limits})"
        low, high = min(self.scores), max(self.scores)
        spread = f"{low:.2f}" if len(self.scores) == 1 else f"{low:.2f}-{high:.2f}"
        verdict = (
            "matches"
            if self.matches
            else "does not match"
            if self.median is not None and self.median >= t.unknown
            else "is a stranger to"
        )
        return (
            f"{len(self.scores)} crop(s) score {spread} (median {self.median:.2f}) against"
            f" {self.person}'s photos: the group {verdict} {self.person} ({limits})"
        )


def merge_check(
    cluster: Cluster,
    person: str,
    templates: Sequence[Template],
    thresholds: Thresholds,
    embed: Callable[[Path], Embedding | None],
) -> MergeCheck:
    """Score each crop (embedded again by `embed`, as the gallery will) against `person`'s
    enrolled photos (not negatives)."""
    theirs = [t.embedding for t in templates if t.person == person and not t.negative]
    scores: list[float] = []
    if theirs:
        matrix = np.stack(theirs).astype(np.float32)
        for crop in cluster.crops:
            embedding = embed(crop.path)
            if embedding is not None:
                scores.append(float(np.max(matrix @ np.asarray(embedding, np.float32))))
    return MergeCheck(person, tuple(scores), thresholds)


def refuse_unconfirmed_merge(check: MergeCheck, cluster: str, confirmed: bool) -> None:
    """Naming a group after someone it does not match needs `--merge`: a stranger's photos in
    a person's folder make the daemon name the stranger as that person."""
    if check.matches or confirmed:
        return
    raise EdgefaceError(
        f"{cluster}: {check.describe()}; nothing moved. Choose another name, or add --merge"
        f" to add these photos to {check.person} anyway"
    )


def _store_from_args(args: argparse.Namespace) -> tuple[UnknownStore, Path]:
    """The store and gallery of `--config` (state_dir, gallery.path, match threshold)."""
    cfg = load_config(Path(args.config)) if getattr(args, "config", None) else Config()
    state = Path(getattr(args, "state_dir", None) or cfg.state_dir)
    gallery = Path(getattr(args, "gallery", None) or cfg.gallery.path)
    # Listing never expires anything (retention only matters to the daemon): any positive value.
    store = UnknownStore(state, retention_seconds=1.0, cluster_threshold=_threshold(args, cfg))
    return store, gallery


def _threshold(args: argparse.Namespace, cfg: Config) -> float:
    explicit = getattr(args, "threshold", None)
    if explicit is not None:
        return float(explicit)
    if cfg.unknowns.cluster_threshold is not None:
        return cfg.unknowns.cluster_threshold
    return cfg.recognition.match_threshold


def cmd_unknown_list(args: argparse.Namespace) -> int:
    store, _ = _store_from_args(args)
    print(format_clusters(store.clusters(), time.time()))
    return 0


def cmd_unknown_name(
    args: argparse.Namespace,
    existing: Callable[[Cluster, str, Path], MergeCheck],
) -> int:
    """Name a cluster; `existing` scores it when the name is a person already enrolled."""
    store, gallery = _store_from_args(args)
    person = check_person_name(args.name)
    cluster = store.cluster(args.cluster)
    folder = enroll_folder(gallery, args.name) if gallery.is_dir() else None
    if folder is not None and folder.is_dir():
        check = existing(cluster, person, gallery)
        refuse_unconfirmed_merge(check, args.cluster, args.merge)
        print(f"{args.cluster}: {check.describe()}")
    moved = store.name_cluster(args.cluster, args.name, gallery)
    print(f"{args.cluster}: {len(moved)} photo(s) moved to {enroll_folder(gallery, args.name)}")
    return 0
