"""Cold start and memory of the real daemon with a 1,000-photo gallery.

Builds (once, in ~/.cache/edgeface/bench-footprint) a gallery of 200 people x 5 photos made from
the faces scikit-image ships (the astronaut and LFW crops, varied in crop, scale, brightness and
mirror), runs the daemon once to fill its embedding cache, then starts it again and measures:
time from process start to READY=1 (models plus a cached gallery), peak resident memory (VmHWM)
and open file descriptors while it processes the sample video. Prints the machine with the
figures. Usage: .venv/bin/python benchmarks/daemon_footprint.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from edgeface.bench import machine, machine_line
from edgeface.models import default_cache_dir
from edgeface.samples import Appearance, compose_video, packaged_faces

PEOPLE, PHOTOS_EACH = 200, 5


def make_gallery(root: Path) -> Path:
    gallery = root / "gallery"
    if gallery.is_dir() and sum(1 for _ in gallery.rglob("*.jpg")) == PEOPLE * PHOTOS_EACH:
        return gallery
    faces = packaged_faces()
    rng = np.random.default_rng(0)
    from skimage import data as skdata

    lfw = (skdata.lfw_subset()[:100] * 255).astype(np.uint8)
    for person in range(PEOPLE):
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = default_cache_dir().parent / "bench-footprint"
    gallery = make_gallery(root)
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
    print(
        f"gallery: {gallery} ({PEOPLE} people x {PHOTOS_EACH} photos); filling the cache once ..."
    )
    first = run_once(config)
    runs = [run_once(config) for _ in range(args.runs)]
    result = {
        "machine": machine(),
        "first_run_ready_s": round(first["ready_s"], 2),
        "cold_start_to_ready_s": round(statistics.median(r["ready_s"] for r in runs), 2),
        "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs), 1),
        "open_fds": max(r["open_fds"] for r in runs),
        "runs": runs,
    }
    m = result["machine"]
    print(machine_line(m))
    print(f"first start (embeds the 1,000 photos): READY after {result['first_run_ready_s']} s")
    print(
        f"cold start with the cached gallery: READY after {result['cold_start_to_ready_s']} s"
        f" (median of {args.runs}); peak resident memory {result['peak_rss_mb']} MB;"
        f" open fds {result['open_fds']}"
    )
    out = Path("benchmarks/results/footprint.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
