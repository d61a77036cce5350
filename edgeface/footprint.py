"""Cold start and memory of the real daemon with a 1,000-photo gallery, for `edgeface bench`.

Owns: building (once, in ~/.cache/edgeface/bench-footprint) a gallery of 200 people x 5 photos
made from the faces scikit-image ships (the astronaut and LFW crops, varied in crop, scale,
brightness and mirror), running `edgeface run` once to fill its embedding cache, then starting
it again and measuring time from process start to READY=1 (models plus a cached gallery), peak
resident memory (VmHWM) and open file descriptors while it processes a short composed video.
Never: part of the daemon; the daemon runs as a child process with no broker (events stay in
its outbox).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from edgeface.models import default_cache_dir
from edgeface.samples import Appearance, compose_video, packaged_faces

PEOPLE, PHOTOS_EACH = 200, 5


def make_gallery(root: Path, people: int = PEOPLE) -> Path:
    gallery = root / "gallery"
    if gallery.is_dir() and sum(1 for _ in gallery.rglob("*.jpg")) == people * PHOTOS_EACH:
        return gallery
    faces = packaged_faces()
    rng = np.random.default_rng(0)
    from skimage import data as skdata

    lfw = (skdata.lfw_subset()[:100] * 255).astype(np.uint8)
    for person in range(people):
        folder = gallery / f"person_{person:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(PHOTOS_EACH):
            if person % 2 == 0:
                photo = faces.person_photo
                s = int(rng.integers(300, 512))
                x, y = int(rng.integers(0, 512 - s + 1)), int(rng.integers(0, max(1, 300 - s // 2)))
                image = cv2.resize(photo[y : y + s, x : x + s], (320, 320))
            else:
                face = cv2.resize(lfw[(person * PHOTOS_EACH + n) % 100], (150, 150))
                image = np.full((320, 320, 3), int(rng.integers(60, 200)), np.uint8)
                image[85:235, 85:235] = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR)
            image = cv2.convertScaleAbs(
                image, alpha=float(rng.uniform(0.8, 1.2)), beta=float(rng.uniform(-20, 20))
            )
            if rng.random() < 0.5:
                image = cv2.flip(image, 1)
            cv2.imwrite(str(folder / f"{n}.jpg"), image)
    return gallery


def run_once(config: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.settimeout(300)
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgeface", "run", "--config", str(config)],
            env={**os.environ, "NOTIFY_SOCKET": str(path)},
            stderr=subprocess.DEVNULL,
        )
        ready = None
        peak_kb = fds = 0
        while proc.poll() is None:
            if ready is None:
                try:
                    if b"READY=1" in sock.recv(4096):
                        ready = time.monotonic() - start
                        sock.settimeout(0.2)
                except TimeoutError:
                    pass
                continue
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak_kb = max(peak_kb, int(status.split("VmHWM:")[1].split()[0]))
                fds = max(fds, len(os.listdir(f"/proc/{proc.pid}/fd")))
            except (OSError, IndexError):
                pass
            time.sleep(0.1)
        sock.close()
    return {"ready_s": ready or float("nan"), "peak_rss_mb": peak_kb / 1024, "open_fds": fds}


def measure_footprint(
    runs: int = 3,
    people: int = PEOPLE,
    root: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """First start (fills the cache), then the median of `runs` cold starts with it cached."""
    root = root or default_cache_dir().parent / "bench-footprint"
    gallery = make_gallery(root, people)
    faces = packaged_faces()
    video = root / "clip.avi"
    if not video.is_file():
        patch = cv2.resize(faces.person_photo[40:300, 120:340], (170, 200))
        compose_video(video, [Appearance(patch, 0.5, 8.0, (40, 80), (400, 100))], duration=10.0)
    config = root / "edgeface.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device": {"id": "footprint"},
                "camera": {"source": str(video)},
                "gallery": {"path": str(gallery), "settle_seconds": 0},
                "state_dir": str(root / "state"),
                "mqtt": {"enabled": True, "port": 1},  # no broker: events stay in the outbox
            }
        )
    )
    log(f"daemon footprint: {gallery} ({people} people x {PHOTOS_EACH} photos) ...")
    # The first start must find an empty cache, whatever an earlier run left behind.
    shutil.rmtree(root / "state", ignore_errors=True)
    first = run_once(config)
    measured = [run_once(config) for _ in range(runs)]
    return {
        "gallery_photos": people * PHOTOS_EACH,
        "first_run_ready_s": round(first["ready_s"], 2),
        "cold_start_to_ready_s": round(statistics.median(r["ready_s"] for r in measured), 2),
        "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in measured), 1),
        "open_fds": max(r["open_fds"] for r in measured),
        "runs": measured,
    }


def format_footprint(result: dict[str, Any]) -> str:
    return (
        f"the daemon (`edgeface run`, {result['gallery_photos']}-photo gallery, no broker):"
        f" first start (embeds the gallery) READY after {result['first_run_ready_s']} s;"
        f" cold start with the cached gallery READY after {result['cold_start_to_ready_s']} s"
        f" (median of {len(result['runs'])}); peak resident memory {result['peak_rss_mb']} MB;"
        f" open fds {result['open_fds']}"
    )
