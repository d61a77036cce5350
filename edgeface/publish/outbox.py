"""A persistent, bounded, ordered outbox for messages that must survive a crash.

Owns: one sqlite file (`outbox.sqlite3`, mode 0600) inside the state directory (made 0700), its
schema, durability settings (WAL + synchronous=FULL: a row whose `append` returned survives a
SIGKILL or power loss), the bound on its size (the OLDEST rows are dropped and counted), and the
recovery of a damaged file (moved aside, rebuilt, warned about).
Never: talks to the network, decides when a row is delivered (the caller `ack`s), or lets an I/O
failure escape as anything but `OutboxError` (so the daemon can keep publishing live and report it).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from edgeface.errors import EdgefaceError
from edgeface.sqlitefiles import DamagedError, is_damage

log = logging.getLogger(__name__)

OUTBOX_FILENAME = "outbox.sqlite3"
_SCHEMA_VERSION = 1
# Overflow is reported at most this often so a long outage does not write a log line per event.
_DROP_REPORT_INTERVAL = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class OutboxError(EdgefaceError):
    """The outbox cannot store a row (disk full, read-only, I/O error); existing rows are intact."""


@dataclass(frozen=True)
class OutboxRow:
    """One stored message; `seq` increases in append order and is the delivery order."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


class Outbox:
    """A sqlite-backed FIFO of messages, safe to use from several threads of one process.

    Only one process may own a state directory at a time (the daemon); sqlite's own locking
    keeps a second one from corrupting the file, but the in-memory depth would be wrong.
    """

    def __init__(
        self,
        state_dir: Path,
        max_rows: int = 10_000,
        *,
        filename: str = OUTBOX_FILENAME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self._dir = Path(state_dir)
        self._path = self._dir / filename
        self._max_rows = max_rows
        self._clock = clock
        # sqlite3 connections are not safe for concurrent use; every access goes through this lock.
        self._lock = threading.Lock()
        self._dropped_unreported = 0
        self._last_drop_report = float("-inf")
        self._prepare_dir()
        self._conn = self._open_or_rebuild()
        self._depth = self._count()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def max_rows(self) -> int:
        return self._max_rows

    def close(self) -> None:
        with self._lock:
            self._report_drops(force=True)
            try:
                self._conn.close()
            except sqlite3.Error as exc:  # pragma: no cover - close of a healthy handle
                log.warning("outbox %s: close failed (%s)", self._path, exc)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API -------------------------------------------------------------------------------

    def append(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Store one message durably and return its seq; drops the oldest rows beyond max_rows.

        Raises OutboxError when the row cannot be stored; the transaction is rolled back, so
        rows stored earlier are untouched.
        """
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                cur = self._conn.execute(
                    "INSERT INTO outbox (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                    (topic, bytes(payload), qos, int(retain), self._clock()),
                )
                seq = int(cur.lastrowid or 0)
                excess = self._depth + 1 - self._max_rows
                dropped = 0
                if excess > 0:
                    dropped = self._conn.execute(
                        "DELETE FROM outbox WHERE seq IN "
                        "(SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                        (excess,),
                    ).rowcount
                    self._conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('dropped_total', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                        (dropped,),
                    )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox {self._path}: cannot store a message ({exc})") from exc
            self._depth += 1 - dropped
            if dropped:
                self._dropped_unreported += dropped
                self._report_drops()
            return seq

    def peek(self, limit: int = 100, after: int = 0) -> list[OutboxRow]:
        """Up to `limit` rows with seq > `after`, oldest first."""
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT seq, topic, payload, qos, retain, created FROM outbox "
                    "WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self._path}: cannot be read ({exc})") from exc
        return [
            OutboxRow(int(s), str(t), bytes(p), int(q), bool(r), float(c))
            for s, t, p, q, r, c in rows
        ]

    def ack(self, seq: int) -> bool:
        """Remove a delivered row; False if it was already gone (acked twice, or dropped)."""
        with self._lock:
            try:
                removed = self._conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self._path}: cannot remove a row ({exc})") from exc
            self._depth -= removed
            return removed > 0

    def depth(self) -> int:
        with self._lock:
            return self._depth

    @property
    def dropped_total(self) -> int:
        """Rows dropped for overflow over the life of this file (persists across restarts)."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT value FROM meta WHERE key = 'dropped_total'"
                ).fetchone()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self._path}: cannot be read ({exc})") from exc
        return int(row[0]) if row else 0

    # -- internals -----------------------------------------------------------------------------

    def _prepare_dir(self) -> None:
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask and ignored for an existing directory; the
            # outbox holds who was seen where, so the directory is private either way.
            if self._dir.stat().st_mode & 0o777 != 0o700:
                os.chmod(self._dir, 0o700)
            # Create the file ourselves so it is 0600 from its first byte; sqlite gives the
            # -wal and -shm files the same mode as the database file.
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            if self._path.stat().st_mode & 0o777 != 0o600:
                os.chmod(self._path, 0o600)
        except OSError as exc:
            raise OutboxError(
                f"outbox {self._path}: cannot prepare state directory ({exc.strerror or exc})"
            ) from exc

    def _open_or_rebuild(self) -> sqlite3.Connection:
        try:
            return self._open()
        except sqlite3.Error as exc:
            if not is_damage(exc):
                raise OutboxError(f"outbox {self._path}: cannot be opened ({exc})") from exc
            aside = self._move_aside()
            log.warning(
                "outbox %s was damaged (%s); moved to %s and started empty", self._path, exc, aside
            )
        self._prepare_dir()
        try:
            return self._open()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self._path}: cannot be created ({exc})") from exc

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so a row and its overflow trim are
        # one transaction. check_same_thread=False: self._lock serialises access instead.
        conn = sqlite3.connect(
            str(self._path), isolation_level=None, check_same_thread=False, timeout=5.0
        )
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if not mode or str(mode[0]).lower() != "wal":
                raise DamagedError(f"cannot enable WAL (journal_mode={mode})")
            conn.execute("PRAGMA synchronous=FULL")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise DamagedError(f"integrity check failed: {check}")
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (_SCHEMA_VERSION,),
            )
            try:
                conn.execute("SELECT seq, topic, payload, qos, retain, created FROM outbox LIMIT 1")
            except sqlite3.OperationalError as exc:
                raise DamagedError(f"unexpected table layout ({exc})") from exc
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self._path.with_name(f"{self._path.name}.damaged-{stamp}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self._path) + suffix)
            if src.exists():
                try:
                    os.replace(src, Path(str(aside) + suffix))
                except OSError as exc:
                    raise OutboxError(
                        f"outbox {self._path}: damaged and cannot be moved aside ({exc.strerror})"
                    ) from exc
        return aside

    def _count(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # pragma: no cover - sqlite rolls back on its own then
            log.debug("outbox rollback failed: %s", exc)

    def _report_drops(self, force: bool = False) -> None:
        if not self._dropped_unreported:
            return
        now = self._clock()
        if force or now - self._last_drop_report >= _DROP_REPORT_INTERVAL:
            log.warning(
                "outbox full (%d rows): dropped the %d oldest message(s)",
                self._max_rows,
                self._dropped_unreported,
            )
            self._dropped_unreported = 0
            self._last_drop_report = now
