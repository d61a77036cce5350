"""Image dimensions from the file header, before anything is decoded.

Owns: reading width x height from PNG, JPEG and WebP headers so `images` can refuse a
decompression bomb (a small file that decodes to gigabytes) without decoding it. OpenCV's own
limit (OPENCV_IO_MAX_IMAGE_PIXELS) only holds if it is set before the first OpenCV image call
in the process, which a library cannot guarantee. Never: decodes pixels or raises on odd input
(an unknown header gives None and the decoder decides).
"""

from __future__ import annotations

import struct

MAX_PIXELS = 64 * 1024 * 1024  # the same bound edgeface.images gives OpenCV

# JPEG start-of-frame markers (baseline, progressive, lossless, ...), not DHT/JPG/DAC.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG or WebP header, or None when not recognised."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_dimensions(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp_dimensions(data)
    return None


def too_many_pixels(data: bytes, limit: int = MAX_PIXELS) -> str | None:
    """A one-line reason when the header announces more than `limit` pixels."""
    size = image_dimensions(data)
    if size is None or size[0] * size[1] <= limit:
        return None
    return f"image is {size[0]}x{size[1]} pixels, more than {limit // (1024 * 1024)} MP allowed"


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        if marker == 0xDA or length < 2:  # scan data without a frame header: give up
            return None
        pos += 2 + length
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    if kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    return None
