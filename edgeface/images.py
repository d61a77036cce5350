"""Reading still images from disk safely.

Owns: turning a path into a BGR uint8 array or a one-line EdgefaceError (missing, unreadable,
empty, not an image, too large, a FIFO or device), with EXIF orientation applied and decoding bounded in memory.
Never: detection or any knowledge of faces.
"""

from __future__ import annotations

import os
from pathlib import Path

# Read by OpenCV lazily at the first decode; bounds decompression bombs (about 64 MP).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(64 * 1024 * 1024))

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.files import read_regular_file
from edgeface.imageheader import too_many_pixels
from edgeface.types import ImageBGR

MAX_FILE_BYTES = 40 * 1024 * 1024
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


def to_bgr(image: np.ndarray) -> ImageBGR:
    """Grayscale, BGRA or 16-bit arrays to 8-bit 3-channel BGR."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    return image


def decode_image(data: bytes, name: str) -> ImageBGR:
    """Decode image bytes (EXIF orientation applied) or raise a one-line error naming `name`."""
    if not data:
        raise EdgefaceError(f"{name}: empty file, expected a JPEG/PNG/WebP image")
    if len(data) > MAX_FILE_BYTES:
        raise EdgefaceError(f"{name}: {len(data)} bytes, larger than {MAX_FILE_BYTES} allowed")
    bomb = too_many_pixels(data)
    if bomb is not None:
        raise EdgefaceError(f"{name}: {bomb}")
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise EdgefaceError(f"{name}: cannot be decoded ({str(exc).strip()[:120]})") from exc
    if image is None or image.size == 0:
        raise EdgefaceError(f"{name}: not a readable image (corrupt, truncated or too large)")
    return to_bgr(image)


def load_image(path: Path) -> ImageBGR:
    """Read and decode one image file (a FIFO or device is refused before it is opened)."""
    return decode_image(read_regular_file(path, MAX_FILE_BYTES, "an image file"), str(path))
