"""The enrolled gallery: from a folder scan to a Matcher and a report.

Owns: per-photo analysis (decode, detect, largest face, size and sharpness checks, embed) through
the embedding cache, recomputing only photos whose file changed, the gallery report (people,
photo and usable counts, problems with reasons), the gallery version (a content hash a fleet can
compare), and logging each problem once when it first appears.
Photos are streamed: each one is read, hashed, analysed, committed to the cache and released
before the next is opened, so memory does not grow with the number of photos arriving, and an
interrupted refresh keeps what it did. A refresh may be given a time budget and a stop event:
what it has not reached stays in a backlog (`GalleryUpdate.indexing`) for the next refresh, and
photos that appeared since the previous refresh go before that backlog.
Never: watches the folder (see watcher.py), owns threads, or writes into the gallery folder.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config, GalleryConfig
from edgeface.detect import DETECTION_VERSION
from edgeface.errors import EdgefaceError
from edgeface.gallery.cache import Analysis, EmbeddingCache
from edgeface.gallery.folder import FolderScanner, GalleryScan, PhotoEntry, Problem
from edgeface.gallery.matcher import Matcher, Thresholds
from edgeface.images import MAX_FILE_BYTES, decode_image
from edgeface.types import Embedding, ImageBGR

log = logging.getLogger(__name__)

# (done, total, path): called while photos are analysed, e.g. to draw a progress bar.
ProgressCallback = Callable[[int, int, Path], None]

# The daemon's first refresh indexes for at most this long before READY; the rest of an uncached
# gallery is indexed in the background (deploy/edgeface.service's TimeoutStartSec allows for it).
START_INDEXING_SECONDS = 30.0


@dataclass(frozen=True)
class PhotoReport:
    path: Path
    person: str
    negative: bool
    usable: bool
    reason: str | None = None  # why it is not usable
    warning: str | None = None  # usable, but worth a look (e.g. several faces)
    faces: int = 0
    face_px: float | None = None
    sharpness: float | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class PersonReport:
    name: str
    photos: int
    usable: int
    negatives: int = 0
    usable_negatives: int = 0


@dataclass(frozen=True)
class GalleryReport:
    root: Path
    people: tuple[PersonReport, ...]
    photos: tuple[PhotoReport, ...]
    problems: tuple[Problem, ...]  # every entry that cannot be used, with the reason
    warnings: tuple[Problem, ...]  # usable photos worth a look
    pending: tuple[Path, ...]  # files still being written (not settled yet)

    @property
    def usable_templates(self) -> int:
        return sum(p.usable for p in self.photos if not p.negative)


@dataclass(frozen=True)
class Template:
    person: str
    path: Path
    embedding: Embedding
    negative: bool = False


@dataclass(frozen=True)
class Indexing:
    """Settled photos whose analysis is known (from memory, cache or computed) out of all."""

    done: int
    total: int

    @property
    def finished(self) -> bool:
        return self.done >= self.total


@dataclass(frozen=True)
class GalleryUpdate:
    matcher: Matcher
    report: GalleryReport
    version: str  # content hash of the settled gallery files (names and bytes)
    computed: int  # embeddings computed by this refresh (0 when everything came from cache)
    changed: bool  # templates, people or problems differ from the previous refresh
    templates: tuple[Template, ...] = ()
    next_settle_at: float | None = None  # wall-clock time a pending file may become usable
    indexing: Indexing = Indexing(0, 0)  # photos not reached yet are left out of everything else


@dataclass
class _PhotoState:
    signature: object
    report: PhotoReport
    embedding: Embedding | None


class Gallery:
    """Keeps the analysed state of one gallery folder; `refresh` is cheap when nothing changed.

    Not tied to a thread; `refresh` may be called from any one thread at a time (it locks).
    """

    def __init__(
        self,
        root: Path,
        settings: GalleryConfig,
        thresholds: Thresholds,
        analyzer: FaceAnalyzer,
        cache: EmbeddingCache | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.root = Path(root)
        self.settings = settings
        self.thresholds = thresholds
        self.analyzer = analyzer
        self.cache = cache
        self.progress = progress
        self.analysis_version = analysis_version(analyzer)
        self._scanner = FolderScanner(self.root, settings.settle_seconds)
        self._photos: dict[Path, _PhotoState] = {}
        self._backlog: set[Path] = set()  # settled photos the last refresh did not reach
        self._logged: dict[Path, str] = {}
        self._last_key: tuple[object, ...] | None = None
        self._lock = threading.Lock()
        self.last_update: GalleryUpdate | None = None

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        analyzer: FaceAnalyzer,
        cache: EmbeddingCache | None = None,
        progress: ProgressCallback | None = None,
    ) -> Gallery:
        """The configured gallery with its cache in `cfg.state_dir`."""
        if cache is None:
            cache = EmbeddingCache.in_state_dir(cfg.state_path)
            cache.forget_other_versions(analysis_version(analyzer))
        rec = cfg.recognition
        return cls(
            Path(cfg.gallery.path),
            cfg.gallery,
            Thresholds.from_config(rec),
            analyzer,
            cache,
            progress,
        )

    def refresh(
        self,
        now: float,
        *,
        budget: float | None = None,
        stop: threading.Event | None = None,
    ) -> GalleryUpdate:
        """Rescan the folder (wall-clock `now`), analyse what changed, build a new Matcher.

        With a `budget` (seconds), photos are analysed until it is spent (at least one), and
        with `stop`, until it is set; the photos not reached are left for the next refresh.
        """
        deadline = None if budget is None else time.monotonic() + budget
        with self._lock:
            scan = self._scanner.scan(now)
            computed, indexing = self._update_photos(scan, deadline, stop)
            update = self._build_update(scan, computed, indexing)
            self._log_new_problems(update.report)
            self.last_update = update
            return update

    def start_refresh(self, now: float, stop: threading.Event) -> GalleryUpdate:
        """The daemon's first refresh, before READY: at most START_INDEXING_SECONDS of reading
        and analysing photos, then the rest is left to the watcher (`indexing` says how much).
        """
        return self.refresh(now, budget=START_INDEXING_SECONDS, stop=stop)

    # -- per-photo analysis -----------------------------------------------------------------

    def _update_photos(
        self, scan: GalleryScan, deadline: float | None, stop: threading.Event | None
    ) -> tuple[int, Indexing]:
        current: dict[Path, _PhotoState] = {}
        todo: list[PhotoEntry] = []
        for entry in scan.photos:
            known = self._photos.get(entry.path)
            if known is not None and known.signature == entry.signature:
                current[entry.path] = known
            else:
                todo.append(entry)
        # Photos that appeared since the last refresh go before an older backlog: one new photo
        # must not wait behind thousands (sorted() is stable, so each group keeps scan order).
        todo.sort(key=lambda e: e.path in self._backlog)
        computed = 0
        left: set[Path] = set()
        for done, entry in enumerate(todo):
            out_of_time = deadline is not None and done > 0 and time.monotonic() >= deadline
            if out_of_time or (stop is not None and stop.is_set()):
                left.add(entry.path)
                continue
            state, analysed = self._resolve(entry, self._photos.get(entry.path))
            current[entry.path] = state
            computed += int(analysed)
            if self.progress is not None:
                self.progress(done + 1, len(todo), entry.path)
        self._photos = current
        self._backlog = left
        return computed, Indexing(len(scan.photos) - len(left), len(scan.photos))

    def _resolve(self, entry: PhotoEntry, known: _PhotoState | None) -> tuple[_PhotoState, bool]:
        """One new or changed file, start to finish: read, hash, answer from memory or cache,
        else analyse and cache the result. Its bytes and pixels are released on return.
        The flag says whether it was analysed (not found in memory or cache).
        """
        if entry.size > MAX_FILE_BYTES:
            reason = f"{entry.size} bytes, larger than {MAX_FILE_BYTES} allowed"
            return self._failed(entry, reason), False
        try:
            data = entry.path.read_bytes()
        except OSError as exc:
            return self._failed(entry, f"cannot be read ({exc.strerror or exc})"), False
        sha = hashlib.sha256(data).hexdigest()
        if (
            known is not None
            and known.report.sha256 == sha
            and known.report.negative == entry.negative
        ):
            # Touched or copied over with the same bytes: keep the result, note the new signature.
            return _PhotoState(entry.signature, known.report, known.embedding), False
        cached = self.cache.get(sha, self.analysis_version) if self.cache is not None else None
        if cached is not None:
            return self._judge(entry, sha, cached), False
        analysis = self._analyse(data, entry.path)
        del data  # the pixels are gone too once _analyse returned; keep only the result
        if self.cache is not None:
            # Committed photo by photo: a stop or a crash keeps everything analysed so far.
            self.cache.put(sha, self.analysis_version, analysis)
        return self._judge(entry, sha, analysis), True

    def _failed(self, entry: PhotoEntry, reason: str) -> _PhotoState:
        report = PhotoReport(entry.path, entry.person, entry.negative, usable=False, reason=reason)
        return _PhotoState(entry.signature, report, None)

    def _analyse(self, data: bytes, path: Path) -> Analysis:
        name = str(path)
        try:
            image = decode_image(data, name)
        except EdgefaceError as exc:
            return Analysis(faces=0, failure=str(exc).removeprefix(f"{name}: "))
        return analyse_image(self.analyzer, image)

    def _judge(self, entry: PhotoEntry, sha: str, analysis: Analysis) -> _PhotoState:
        """Apply the current quality thresholds to a (possibly cached) analysis."""
        reason, warning = judge_analysis(analysis, self.settings)
        box = analysis.box
        report = PhotoReport(
            path=entry.path,
            person=entry.person,
            negative=entry.negative,
            usable=reason is None,
            reason=reason,
            warning=warning,
            faces=analysis.faces,
            face_px=min(box.w, box.h) if box else None,
            sharpness=analysis.sharpness,
            sha256=sha,
        )
        return _PhotoState(entry.signature, report, analysis.embedding if reason is None else None)

    # -- building the result -----------------------------------------------------------------

    def _build_update(self, scan: GalleryScan, computed: int, indexing: Indexing) -> GalleryUpdate:
        states = [self._photos[p.path] for p in scan.photos if p.path in self._photos]
        templates = tuple(
            Template(s.report.person, s.report.path, s.embedding, s.report.negative)
            for s in states
            if s.embedding is not None
        )
        positives = [t for t in templates if not t.negative]
        dim = positives[0].embedding.shape[0] if positives else 0
        matrix = (
            np.stack([t.embedding for t in positives]).astype(np.float32)
            if positives
            else np.zeros((0, dim), np.float32)
        )
        negatives: dict[str, list[Embedding]] = {}
        for t in templates:
            if t.negative:
                negatives.setdefault(t.person, []).append(t.embedding)
        negative_matrices: dict[str, npt.NDArray[np.float32]] = {
            person: np.stack(vectors).astype(np.float32) for person, vectors in negatives.items()
        }
        matcher = Matcher(matrix, [t.person for t in positives], self.thresholds, negative_matrices)

        reports = tuple(s.report for s in states)
        problems = tuple(scan.problems) + tuple(
            Problem(r.path, r.reason) for r in reports if r.reason is not None
        )
        warnings = tuple(Problem(r.path, r.warning) for r in reports if r.warning is not None)
        report = GalleryReport(
            root=self.root,
            people=_people(scan.people, reports),
            photos=reports,
            problems=problems,
            warnings=warnings,
            pending=scan.pending,
        )
        version = gallery_version(scan, reports)
        key = (
            tuple((r.person, str(r.path), r.negative, r.sha256, r.usable) for r in reports),
            tuple(scan.people),
            problems,
            warnings,
        )
        changed = key != self._last_key
        self._last_key = key
        return GalleryUpdate(
            matcher=matcher,
            report=report,
            version=version,
            computed=computed,
            changed=changed,
            templates=templates,
            next_settle_at=scan.next_settle_at,
            indexing=indexing,
        )

    def _log_new_problems(self, report: GalleryReport) -> None:
        """One log line per problem when it first appears, not on every refresh."""
        current: dict[Path, str] = {}
        for kind, items in (("problem", report.problems), ("warning", report.warnings)):
            for item in items:
                text = f"{kind}:{item.reason}"
                current[item.path] = text
                if self._logged.get(item.path) != text:
                    log.warning("gallery: %s: %s", item.path, item.reason)
        self._logged = current


def analysis_version(analyzer: FaceAnalyzer) -> str:
    """Everything a cached result depends on: model, crop geometry and detector settings."""
    det = analyzer.detector.settings
    return (
        f"{analyzer.embedding_version}/{DETECTION_VERSION}{det.min_score:g}-{det.min_face_px}"
        f"-{int(det.retry_padded)}-s{det.search_face_px}"
    )


def analyse_image(analyzer: FaceAnalyzer, image: ImageBGR) -> Analysis:
    """Detect all faces and embed the largest one (the others are only counted)."""
    faces = analyzer.detect(image)
    if not faces:
        return Analysis(faces=0, failure="no face found")
    largest = max(faces, key=lambda f: f.box.area)
    analysed = analyzer.embed_face(image, largest)
    return Analysis(
        faces=len(faces),
        embedding=analysed.embedding,
        box=largest.box,
        sharpness=analysed.aligned.sharpness,
    )


def judge_analysis(analysis: Analysis, settings: GalleryConfig) -> tuple[str | None, str | None]:
    """(reason it is unusable or None, warning or None) under the current thresholds."""
    if analysis.failure is not None or analysis.embedding is None or analysis.box is None:
        return analysis.failure or "no face found", None
    side = min(analysis.box.w, analysis.box.h)
    if side < settings.min_face_px:
        return f"face too small ({side:.0f} px, at least {settings.min_face_px} px needed)", None
    sharpness = analysis.sharpness or 0.0
    if sharpness < settings.min_sharpness:
        return (
            f"face too blurry (sharpness {sharpness:.1f}, at least {settings.min_sharpness:g} needed)",
            None,
        )
    if analysis.faces > 1:
        return None, f"{analysis.faces} faces found, using the largest"
    return None, None


def _people(names: tuple[str, ...], reports: tuple[PhotoReport, ...]) -> tuple[PersonReport, ...]:
    counts: dict[str, list[int]] = {name: [0, 0, 0, 0] for name in names}
    for r in reports:
        c = counts.setdefault(r.person, [0, 0, 0, 0])
        base = 2 if r.negative else 0
        c[base] += 1
        c[base + 1] += int(r.usable)
    return tuple(
        PersonReport(name, photos=c[0], usable=c[1], negatives=c[2], usable_negatives=c[3])
        for name, c in sorted(counts.items())
    )


def gallery_version(scan: GalleryScan, reports: tuple[PhotoReport, ...]) -> str:
    """sha256 over (relative name, content hash) of every settled photo, 16 hex digits.

    Two devices whose folders hold the same files report the same version, whatever the
    model, thresholds or file times.
    """
    digest = hashlib.sha256()
    hashes = {r.path: r.sha256 for r in reports}
    for entry in scan.photos:
        # NFC: the same folder synced through macOS (NFD names) must give the same version.
        relative = unicodedata.normalize("NFC", entry.path.relative_to(scan.root).as_posix())
        digest.update(f"{relative}\0{hashes.get(entry.path) or 'unread'}\n".encode())
    return digest.hexdigest()[:16]
