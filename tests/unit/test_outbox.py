"""Unit tests for the sqlite outbox: order, bound, durability, permissions, damage, full disk."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeface.publish.outbox import OUTBOX_FILENAME, Outbox, OutboxError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_append_peek_ack_keeps_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "state", max_rows=100) as box:
        seqs = [box.append(f"t/{i}", f"p{i}".encode(), qos=1, retain=i == 2) for i in range(5)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        rows = box.peek(10)
        assert [r.topic for r in rows] == [f"t/{i}" for i in range(5)]
        assert [r.payload for r in rows] == [f"p{i}".encode() for i in range(5)]
        assert [r.retain for r in rows] == [False, False, True, False, False]
        assert box.depth() == 5
        assert box.ack(seqs[0]) is True
        assert box.ack(seqs[0]) is False  # acking twice is harmless
        assert [r.seq for r in box.peek(2)] == seqs[1:3]
        assert [r.seq for r in box.peek(10, after=seqs[2])] == seqs[3:]
        assert box.depth() == 4


def test_rows_survive_reopen_and_seq_keeps_increasing(tmp_path: Path) -> None:
    with Outbox(tmp_path, max_rows=100) as box:
        first = box.append("a", b"1")
        second = box.append("a", b"2")
        box.ack(second)  # the highest seq is gone; AUTOINCREMENT must never reuse it
    with Outbox(tmp_path, max_rows=100) as box:
        assert [r.seq for r in box.peek()] == [first]
        assert box.depth() == 1
        assert box.append("a", b"3") > second


def test_overflow_drops_oldest_and_counts_persistently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edgeface.publish.outbox")
    with Outbox(tmp_path, max_rows=3) as box:
        for i in range(5):
            box.append("t", str(i).encode())
        assert [r.payload for r in box.peek()] == [b"2", b"3", b"4"]
        assert box.depth() == 3
        assert box.dropped_total == 2
    assert any("dropped" in r.getMessage() for r in caplog.records)
    with Outbox(tmp_path, max_rows=3) as box:
        assert box.dropped_total == 2
        box.append("t", b"5")
        assert box.dropped_total == 3


def test_modes_are_private(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"
    old_umask = os.umask(0o022)
    try:
        with Outbox(state) as box:
            box.append("t", b"x")
            for suffix in ("", "-wal", "-shm"):
                f = Path(str(box.path) + suffix)
                if f.exists():
                    assert _mode(f) == 0o600, f
    finally:
        os.umask(old_umask)
    assert _mode(state) == 0o700


def test_existing_loose_dir_and_file_are_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    (state / OUTBOX_FILENAME).touch()
    os.chmod(state / OUTBOX_FILENAME, 0o644)
    Outbox(state).close()
    assert _mode(state) == 0o700
    assert _mode(state / OUTBOX_FILENAME) == 0o600


def test_durability_pragmas(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        conn = box._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_damaged_file_is_moved_aside_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / OUTBOX_FILENAME).write_bytes(b"this is not sqlite" * 500)
    caplog.set_level(logging.WARNING, logger="edgeface.publish.outbox")
    with Outbox(tmp_path) as box:
        assert box.depth() == 0
        seq = box.append("t", b"ok")
        assert [r.seq for r in box.peek()] == [seq]
    aside = [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
    assert aside and aside[0].read_bytes().startswith(b"this is not sqlite")
    assert any("damaged" in r.getMessage() for r in caplog.records)


def test_wrong_schema_is_treated_as_damage(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / OUTBOX_FILENAME)
    conn.execute("CREATE TABLE outbox (x INTEGER)")
    conn.commit()
    conn.close()
    with Outbox(tmp_path) as box:
        box.append("t", b"x")
        assert box.depth() == 1


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Outbox(tmp_path, max_rows=0)
    with Outbox(tmp_path) as box, pytest.raises(ValueError):
        box.append("t", b"x", qos=3)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_state_dir_raises_outbox_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o500)
    try:
        with pytest.raises(OutboxError, match="state"):
            Outbox(state)
    finally:
        os.chmod(state, 0o700)


def test_full_disk_raises_and_keeps_existing_rows(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes writes past a size fail with EFBIG, which sqlite reports like a full
    # disk; it applies to root too, unlike permission bits. A child process keeps the limit local.
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        from edgeface.publish.outbox import Outbox, OutboxError
        box = Outbox(Path({str(tmp_path)!r}), max_rows=100000)
        for i in range(20):
            box.append("keep", str(i).encode())
        box._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        size = max(p.stat().st_size for p in Path({str(tmp_path)!r}).iterdir())
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 64 * 1024, size + 64 * 1024))
        try:
            for i in range(100000):
                box.append("fill", b"x" * 4096)
        except OutboxError as exc:
            print("ERROR", exc)
            sys.exit(0)
        sys.exit(3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "cannot store" in done.stdout
    with Outbox(tmp_path, max_rows=100000) as box:
        kept = [r.payload for r in box.peek(1000) if r.topic == "keep"]
        assert kept == [str(i).encode() for i in range(20)]
        assert box._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
