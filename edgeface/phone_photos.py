"""Phone-size gallery photos made from a real face, for memory tests and benchmarks.

Owns: one 4000x3000 JPEG (scikit-image's astronaut, Eileen Collins, scaled up on a grainy
background so it compresses like a phone photo, a few MB) and writing any number of distinct
copies of it: each copy carries its own JPEG comment, so its content hash differs (the gallery
cache sees a new photo) while every copy is still decoded and analysed in full.
Never: part of the daemon; it only writes into the folder it is given.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from edgeface.samples import packaged_faces

PHONE_SIZE = (4000, 3000)  # width, height: a 12 MP phone camera


def phone_jpeg(size: tuple[int, int] = PHONE_SIZE, seed: int = 0) -> bytes:
    """One phone-size JPEG of a real face (about a third of the frame high) with sensor grain."""
    width, height = size
    rng = np.random.default_rng(seed)
    face = packaged_faces().person_photo
    side = height // 2
    image = np.full((height, width, 3), 128, np.uint8)
    x, y = (width - side) // 2, (height - side) // 3
    image[y : y + side, x : x + side] = cv2.resize(
        face, (side, side), interpolation=cv2.INTER_CUBIC
    )
    grain = rng.normal(0.0, 6.0, image.shape).astype(np.int16)
    image = np.clip(image.astype(np.int16) + grain, 0, 255).astype(np.uint8)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buffer.tobytes()


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same picture with a JPEG comment (COM segment) right after the start marker."""
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def write_copies(jpeg: bytes, folder: Path, count: int, prefix: str = "photo") -> list[Path]:
    """`count` distinct files of the same picture in `folder` (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"{prefix}-{n:05d}.jpg"
        path.write_bytes(with_comment(jpeg, f"{prefix} {n}"))
        paths.append(path)
    return paths
