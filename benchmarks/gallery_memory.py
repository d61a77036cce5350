"""A first start with a large uncached gallery of phone-size photos: memory and SIGTERM.

Makes N distinct 4000x3000 JPEGs of a real face (`edgeface.phone_photos`, about 3 MB each, 200
people), then runs the real daemon (`edgeface run`, no broker: events stay in its outbox, camera
a short looping video with no face) three times on the same state directory:
  1. SIGTERM a few seconds into the start-up indexing (before READY),
  2. restart, SIGTERM a few seconds after READY (indexing still going on in the background),
  3. restart, let the indexing finish, SIGTERM.
Reported per run: photos in the cache when the signal was sent and after exit, seconds from the
signal to exit and the exit code, peak resident memory (VmHWM) and when READY was logged.

Usage: .venv/bin/python benchmarks/gallery_memory.py [--photos 1000] [--work DIR] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from edgeface.gallery.cache import CACHE_FILE_NAME
from edgeface.phone_photos import phone_jpeg, with_comment
from edgeface.samples import compose_video

PEOPLE = 200


def make_photos(gallery: Path, count: int) -> None:
    jpeg = phone_jpeg()
    for n in range(count):
        folder = gallery / f"person_{n % PEOPLE:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n:05d}.jpg").write_bytes(with_comment(jpeg, f"photo {n}"))


def write_config(work: Path, gallery: Path) -> Path:
    video = work / "camera.avi"
    # No face in view: no event waits in the outbox for a broker that is not there, so the
    # time to exit is the daemon's own (flushing an undeliverable outbox takes up to 10 s).
    compose_video(video, [], 4.0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    doc = {
        "device": {"id": "bench"},
        "camera": {"source": str(video), "name": "bench", "fps_cap": 5, "loop": True},
        "gallery": {"path": str(gallery)},
        "state_dir": str(work / "state"),
        "mqtt": {"port": port},
    }
    path = work / "edgeface.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def cached(state: Path) -> int:
    try:
        with sqlite3.connect(f"file:{state / CACHE_FILE_NAME}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM analyses").fetchone()[0])
    except sqlite3.Error:
        return 0


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_once(config: Path, state: Path, log: Path, when: str, delay: float, total: int) -> None:
    """Start the daemon, SIGTERM it at `when` (+`delay` s), print what happened."""
    started = time.monotonic()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgeface", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    ready_at: float | None = None
    peak = 0
    trigger: float | None = started + delay if when == "start" else None
    while proc.poll() is None:
        now = time.monotonic()
        peak = max(peak, peak_rss(proc.pid))
        if ready_at is None and " ready: " in log.read_text(errors="replace"):
            ready_at = now - started
            if when == "ready":
                trigger = now + delay
        if when == "done" and ready_at is not None and trigger is None and cached(state) >= total:
            trigger = now
        if trigger is not None and now >= trigger:
            break
        time.sleep(0.1)
    kept_at_signal = cached(state)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    exit_after = time.monotonic() - signalled
    ready = f"{ready_at:.1f} s" if ready_at is not None else "not yet"
    print(
        f"SIGTERM at {when}+{delay:g}s ({signalled - started:.1f} s after start, READY {ready}):"
        f" exit {code} after {exit_after:.2f} s; cached {kept_at_signal} -> {cached(state)}"
        f" of {total}; peak RSS {peak / 2**20:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--work", type=Path, help="folder to work in (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeface-gallery-memory-"))
    try:
        gallery = work / "gallery"
        t = time.monotonic()
        make_photos(gallery, args.photos)
        size = sum(p.stat().st_size for p in gallery.rglob("*.jpg"))
        print(
            f"{args.photos} photos 4000x3000, {size / 2**30:.2f} GiB,"
            f" made in {time.monotonic() - t:.0f} s"
        )
        config = write_config(work, gallery)
        state = work / "state"
        for when, delay in (("start", 8.0), ("ready", 5.0), ("done", 0.0)):
            run_once(config, state, work / f"daemon-{when}.log", when, delay, args.photos)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
