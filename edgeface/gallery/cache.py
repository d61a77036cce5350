"""On-disk cache of per-photo analysis results (sqlite, stdlib).

Owns: the cache file in the state directory (0600 in a 0700 folder), its schema, keyed by the
photo's content sha256 plus an analysis version (model, alignment, detector settings), atomic
writes (one short transaction per call; the gallery commits photo by photo so an interrupted
indexing keeps its progress), and recovery from a damaged file: it is moved aside and
rebuilt with a warning. Stored per photo: the largest face's embedding (float32 bytes), box and
sharpness, the number of faces, or the reason no face could be used.
Never: decides whether a face is good enough (thresholds can change without invalidating the
cache), reads photos, or raises on a damaged file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeface.sqlitefiles import DamagedError, is_damage
from edgeface.types import Box, Embedding

log = logging.getLogger(__name__)

CACHE_FILE_NAME = "gallery-cache.sqlite3"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (
    sha256 TEXT NOT NULL,
    version TEXT NOT NULL,
    faces INTEGER NOT NULL,
    embedding BLOB,
    box_x REAL, box_y REAL, box_w REAL, box_h REAL,
    sharpness REAL,
    failure TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (sha256, version)
)
"""


@dataclass(frozen=True)
class Analysis:
    """What one photo's content gave: the largest face, or the reason there is none."""

    faces: int
    embedding: Embedding | None = None
    box: Box | None = None
    sharpness: float | None = None
    failure: str | None = None


class EmbeddingCache:
    """Thread-safe sqlite cache; every public method survives a damaged file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = self._open()

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> EmbeddingCache:
        return cls(Path(state_dir) / CACHE_FILE_NAME)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, sha256: str, version: str) -> Analysis | None:
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT faces, embedding, box_x, box_y, box_w, box_h, sharpness, failure"
                    " FROM analyses WHERE sha256 = ? AND version = ?",
                    (sha256, version),
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                self._rebuild_or_warn(exc)
                return None
        return _row_to_analysis(row) if row else None

    def put_many(self, version: str, items: Iterable[tuple[str, Analysis]]) -> None:
        rows = [_analysis_to_row(sha, version, a) for sha, a in items]
        if not rows:
            return
        with self._lock:
            for attempt in (1, 2):
                try:
                    with self._conn:  # one transaction: all rows or none
                        self._conn.executemany(
                            "INSERT OR REPLACE INTO analyses VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows
                        )
                    return
                except sqlite3.DatabaseError as exc:
                    if attempt == 2 or not is_damage(exc):
                        # The results are still in memory; only the next restart recomputes.
                        log.warning("%s: cannot write the embedding cache (%s)", self.path, exc)
                        return
                    self._rebuild(exc)

    def put(self, sha256: str, version: str, analysis: Analysis) -> None:
        self.put_many(version, [(sha256, analysis)])

    def forget_other_versions(self, version: str) -> int:
        """Drop results of other models/settings (they can never be used again by this build)."""
        with self._lock:
            try:
                with self._conn:
                    cur = self._conn.execute("DELETE FROM analyses WHERE version != ?", (version,))
                return cur.rowcount
            except sqlite3.DatabaseError as exc:
                self._rebuild_or_warn(exc)
                return 0

    def __len__(self) -> int:
        with self._lock:
            try:
                return int(self._conn.execute("SELECT COUNT(*) FROM analyses").fetchone()[0])
            except sqlite3.DatabaseError as exc:
                self._rebuild_or_warn(exc)
                return 0

    # -- opening and recovery -------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        _private_dir(self.path.parent)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise  # full or read-only disk: the caller runs without the cache
            self._move_aside(exc)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        # Create the file 0600 before sqlite does, so it is never briefly world-readable;
        # sqlite gives its journal files the same mode as the database.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise DamagedError(f"quick_check: {check[0] if check else 'no answer'}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise DamagedError(f"unknown schema version {version}")
            with conn:
                conn.execute(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _move_aside(self, exc: Exception) -> None:
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        log.warning(
            "%s: embedding cache is damaged (%s); moved to %s and rebuilding (photos are"
            " analysed again)",
            self.path,
            exc,
            aside.name,
        )
        for suffix in ("", "-journal", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                try:
                    os.replace(src, Path(f"{aside}{suffix}"))
                except OSError:
                    src.unlink(missing_ok=True)

    def _rebuild_or_warn(self, exc: sqlite3.DatabaseError) -> None:
        """A damaged file is rebuilt; a full or read-only disk only costs this cache entry."""
        if is_damage(exc):
            self._rebuild(exc)
        else:
            log.warning("%s: embedding cache not usable right now (%s)", self.path, exc)

    def _rebuild(self, exc: Exception) -> None:
        """Called with the lock held when a query hits a damaged file."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        self._move_aside(exc)
        self._conn = self._connect()


def _private_dir(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        # Embeddings are biometric data: the state folder is ours and must not be shared.
        os.chmod(folder, 0o700)


def _analysis_to_row(sha256: str, version: str, a: Analysis) -> tuple[object, ...]:
    emb = None if a.embedding is None else np.asarray(a.embedding, dtype="<f4").tobytes()
    box = a.box
    return (
        sha256,
        version,
        a.faces,
        emb,
        box.x if box else None,
        box.y if box else None,
        box.w if box else None,
        box.h if box else None,
        a.sharpness,
        a.failure,
        time.time(),
    )


def _row_to_analysis(row: tuple[object, ...]) -> Analysis | None:
    faces, blob, bx, by, bw, bh, sharp, failure = row
    embedding = None
    if blob is not None:
        if not isinstance(blob, bytes) or len(blob) % 4:
            return None  # a row we cannot trust counts as a miss and is recomputed
        embedding = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        if not embedding.size or not np.all(np.isfinite(embedding)):
            return None
    box = (
        Box(float(bx), float(by), float(bw), float(bh))  # type: ignore[arg-type]
        if bx is not None
        else None
    )
    return Analysis(
        faces=int(faces),  # type: ignore[call-overload]
        embedding=embedding,
        box=box,
        sharpness=float(sharp) if sharp is not None else None,  # type: ignore[arg-type]
        failure=str(failure) if failure is not None else None,
    )
