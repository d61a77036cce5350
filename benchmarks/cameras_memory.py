"""Memory of one daemon running two cameras against two daemons running one camera each.

Makes a gallery of one person (scikit-image's astronaut) and two 5 s looping videos, the person
walking past one camera and a stranger past the other, then runs the real daemon (`edgeface
run`, `mqtt.enabled: false`: no broker needed) twice:
  1. one daemon with `cameras: [door, garage]`,
  2. two daemons at the same time, `camera: door` and `camera: garage`.
Each runs for `--seconds` after READY (frames processed, events decided); reported: resident
memory (VmRSS) and its peak (VmHWM) per process, the sums, and the events each logged.

Usage: .venv/bin/python benchmarks/cameras_memory.py [--seconds 20] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import yaml

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config
from edgeface.samples import (
    Appearance,
    compose_video,
    enrollment_photos,
    head_patch,
    packaged_faces,
)


def make_scene(work: Path) -> dict[str, Path]:
    faces = packaged_faces()
    folder = work / "gallery" / faces.person
    folder.mkdir(parents=True, exist_ok=True)
    for n, photo in enumerate(enrollment_photos(faces.person_photo)):
        cv2.imwrite(str(folder / f"{n}.jpg"), photo)
    image = cv2.flip(faces.person_photo, 1)
    box = FaceAnalyzer.from_config(Config()).detect(image)[0].box
    her = head_patch(image, (box.x, box.y, box.w, box.h), 1.9, 170)
    videos = {}
    for name, face in (("door", her), ("garage", faces.strangers[0])):
        videos[name] = work / f"{name}.avi"
        compose_video(videos[name], [Appearance(face, 0.5, 3.5, (40, 90), (300, 110))], 5.0)
    return videos


def camera(name: str, video: Path) -> dict[str, Any]:
    return {"name": name, "source": str(video), "loop": True, "fps_cap": 15}


def write_config(work: Path, tag: str, cameras: dict[str, Any]) -> Path:
    doc = {
        "device": {"id": tag},
        **cameras,
        "gallery": {"path": str(work / "gallery")},
        "state_dir": str(work / f"state-{tag}"),
        "mqtt": {"enabled": False},
    }
    path = work / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def memory_kib(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def run(configs: list[Path], work: Path, seconds: float) -> list[tuple[int, int, int]]:
    """Start the daemons together, let them run `seconds` after READY, measure, SIGTERM."""
    logs = [work / f"{c.stem}.log" for c in configs]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "edgeface", "run", "--config", str(c)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for c, log in zip(configs, logs, strict=True)
    ]
    deadline = time.monotonic() + 300
    while not all(" ready: " in log.read_text() for log in logs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit(f"a daemon did not start; see {work}")
        time.sleep(0.2)
    time.sleep(seconds)
    figures = []
    for proc, log in zip(procs, logs, strict=True):
        rss, peak = memory_kib(proc.pid)
        events = len(re.findall(r": event \w+ track", log.read_text()))
        figures.append((rss, peak, events))
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(60)
    return figures


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(("model name", "Model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="run time after READY")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeface-cameras-"))
    work.mkdir(parents=True, exist_ok=True)
    videos = make_scene(work)
    both = write_config(work, "both", {"cameras": [camera(n, v) for n, v in videos.items()]})
    single = [write_config(work, n, {"camera": camera(n, v)}) for n, v in videos.items()]
    one = run([both], work, args.seconds)
    two = run(single, work, args.seconds)
    mib = 1024.0
    print(f"machine: {cpu_model()} ({platform.machine()}, {os.cpu_count()} cores)")
    print(f"date: {time.strftime('%Y-%m-%d')}; command: {' '.join(sys.argv)}")
    print(f"{args.seconds:g} s after READY, MQTT off, videos in real time at 15 fps")
    print(f"{'run':<34} {'RSS MiB':>8} {'peak MiB':>9} {'events':>7}")
    rss, peak, events = one[0]
    print(f"{'one daemon, cameras door+garage':<34} {rss / mib:8.1f} {peak / mib:9.1f} {events:7d}")
    for name, (rss, peak, events) in zip(videos, two, strict=True):
        print(f"{'daemon, camera ' + name:<34} {rss / mib:8.1f} {peak / mib:9.1f} {events:7d}")
    total = sum(f[0] for f in two)
    print(f"{'two daemons together':<34} {total / mib:8.1f} {sum(f[1] for f in two) / mib:9.1f}")
    print(f"one daemon with two cameras uses {one[0][0] / total:.0%} of two daemons' memory")


if __name__ == "__main__":
    main()
