"""Shared loop for the peer workers: photos and video in, one JSON file out.

Owns: the request/response format between benchmarks/peers.py and a worker running inside a
peer's own virtual environment, the per-frame timing of the video (one thread), and the crop
hash used to spot near-duplicate photos. Never: imports edgeface (it is not installed in the
peer's venv), or scores accuracy (peers.py does that with edgeface.evaluate).

Request (argv[1], JSON): {"images": [path, ...], "video": path | null, "max_frames": int | null}.
Response (argv[2], JSON): {"versions": {...}, "load_seconds": float,
  "images": {path: {"embedding": [float] | null, "box": [x, y, w, h] | null, "faces": int,
                    "crop_hash": int | null, "seconds": float, "error"?: str}},
  "video": {"frames": int, "process_seconds": [float], "decode_seconds": [float],
            "faces": [int]} | null, ...extra keys from the worker}.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

# One detected face: box (x, y, w, h) in pixels, its embedding, and the RGB pixels of the box.
Face = tuple[list[int], np.ndarray, np.ndarray]
Analyze = Callable[[np.ndarray], list[Face]]


def dhash(crop_rgb: np.ndarray) -> int | None:
    """Same 64-bit difference hash as edgeface.evaluate.dhash."""
    if crop_rgb.size == 0:
        return None
    gray = cv2.cvtColor(np.ascontiguousarray(crop_rgb), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def versions(*packages: str) -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):  # dlib when dlib-bin has it
            found[name] = metadata.version(name)
    return found


def _largest(faces: list[Face]) -> Face | None:
    return max(faces, key=lambda f: f[0][2] * f[0][3]) if faces else None


def run_images(
    paths: list[str], load_rgb: Callable[[str], np.ndarray], analyze: Analyze
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in paths:
        start = time.perf_counter()
        try:
            faces = analyze(load_rgb(path))
        except Exception as exc:  # a peer failing on one photo counts as "no face"
            out[path] = {"embedding": None, "box": None, "faces": 0, "crop_hash": None}
            out[path].update(seconds=time.perf_counter() - start, error=repr(exc)[:200])
            continue
        best = _largest(faces)
        out[path] = {
            "embedding": None if best is None else [float(v) for v in best[1].reshape(-1)],
            "box": None if best is None else [int(v) for v in best[0]],
            "faces": len(faces),
            "crop_hash": None if best is None else dhash(best[2]),
            "seconds": time.perf_counter() - start,
        }
    return out


def run_video(path: str, analyze: Analyze, max_frames: int | None) -> dict[str, Any]:
    """Every face on every frame embedded; decode and processing timed separately."""
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise SystemExit(f"{path}: cannot open the video")
    process: list[float] = []
    decode: list[float] = []
    faces: list[int] = []
    while max_frames is None or len(process) < max_frames:
        t0 = time.perf_counter()
        ok, frame = capture.read()
        t1 = time.perf_counter()
        if not ok:
            break
        found = analyze(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        t2 = time.perf_counter()
        decode.append(t1 - t0)
        process.append(t2 - t1)
        faces.append(len(found))
    capture.release()
    return {"frames": len(process), "process_seconds": process, "decode_seconds": decode,
            "faces": faces}  # fmt: skip


def main(
    load: Callable[[], tuple[Analyze, Callable[[str], np.ndarray]]],
    packages: tuple[str, ...],
    extra: Callable[[Analyze, list[str]], dict[str, Any]] | None = None,
) -> None:
    """`load` builds the peer's models and returns (analyze RGB frame, load photo as RGB)."""
    with open(sys.argv[1], encoding="utf-8") as fh:
        request = json.load(fh)
    start = time.perf_counter()
    analyze, load_rgb = load()
    result: dict[str, Any] = {
        "versions": versions(*packages),
        "load_seconds": time.perf_counter() - start,
    }
    result["images"] = run_images(request.get("images", []), load_rgb, analyze)
    if extra is not None:
        result.update(extra(analyze, request.get("images", [])))
    video = request.get("video")
    result["video"] = run_video(video, analyze, request.get("max_frames")) if video else None
    with open(sys.argv[2], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
