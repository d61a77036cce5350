"""Sample scenes made at run time from face photos that pip packages ship.

Owns: composing a video of faces moving over a background (for the demo, tests and benchmarks
that must not depend on third-party photos being in the repository), and writing a small
sample gallery. Never: used by the daemon itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.types import ImageBGR


@dataclass(frozen=True)
class Appearance:
    """A face patch visible from `start` to `end` seconds, moving linearly between two points."""

    patch: ImageBGR
    start: float
    end: float
    origin: tuple[int, int]  # top-left corner at `start`
    destination: tuple[int, int]  # top-left corner at `end`


def compose_video(
    path: Path,
    appearances: Sequence[Appearance],
    duration: float,
    fps: float = 15.0,
    size: tuple[int, int] = (640, 360),
) -> int:
    """Write an MJPG AVI (OpenCV always has that codec) and return the number of frames."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise EdgefaceError(f"{path}: OpenCV cannot write an MJPG video here")
    background = _background(width, height)
    frames = round(duration * fps)
    for index in range(frames):
        t = index / fps
        frame = background.copy()
        for a in appearances:
            if a.start <= t < a.end:
                k = (t - a.start) / max(a.end - a.start, 1e-6)
                x = round(a.origin[0] + k * (a.destination[0] - a.origin[0]))
                y = round(a.origin[1] + k * (a.destination[1] - a.origin[1]))
                _paste(frame, a.patch, x, y)
        writer.write(frame)
    writer.release()
    return frames


def _background(width: int, height: int) -> ImageBGR:
    """A soft horizontal gradient with a little texture, like a wall."""
    ramp = np.linspace(70, 150, width, dtype=np.float32)[None, :, None]
    noise = np.random.default_rng(7).normal(0, 4, (height, width, 1)).astype(np.float32)
    tint = np.array([1.0, 0.95, 0.85], dtype=np.float32)[None, None, :]
    return np.clip(ramp * tint + noise, 0, 255).astype(np.uint8)


def _paste(frame: ImageBGR, patch: ImageBGR, x: int, y: int) -> None:
    h, w = patch.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]


def head_patch(
    image: ImageBGR, box: tuple[float, float, float, float], scale: float, side: int
) -> ImageBGR:
    """A square cut around a face box (`scale` times its side), resized to `side` pixels."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    half = max(w, h) * scale / 2
    x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
    x1, y1 = int(min(cx + half, image.shape[1])), int(min(cy + half, image.shape[0]))
    return cv2.resize(image[y0:y1, x0:x1], (side, side), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class PackagedFaces:
    """Real faces from scikit-image: one enrolled person (several views) and strangers."""

    person: str
    person_photo: ImageBGR
    strangers: list[ImageBGR]


def packaged_faces() -> PackagedFaces:
    try:
        from skimage import data as skdata
    except ImportError as exc:
        raise EdgefaceError(
            "the sample scene needs scikit-image (pip install 'edgeface[build]')"
        ) from exc
    astronaut = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    lfw = (skdata.lfw_subset()[:100] * 255).astype(np.uint8)
    strangers = [
        cv2.cvtColor(cv2.resize(f, (140, 140), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        for f in lfw[[3, 8, 10]]
    ]
    return PackagedFaces("Eileen Collins", astronaut, strangers)


def enrollment_photos(photo: ImageBGR) -> list[ImageBGR]:
    """Three enrollment photos of one person: as taken, darker and rescaled, cropped tighter."""
    h, w = photo.shape[:2]
    darker = cv2.convertScaleAbs(cv2.resize(photo, (w * 3 // 4, h * 3 // 4)), alpha=0.8, beta=-10)
    cropped = photo[h // 20 : h * 3 // 5, w // 6 : w * 2 // 3].copy()
    return [photo, darker, cropped]
