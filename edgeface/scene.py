"""Composed test scenes: real face photos pasted at chosen sizes into a large frame.

Owns: placing face photos (each with its face box) at random non-overlapping positions and given
face widths into a background of any size, and returning where each face ended up. Used by
`edgeface bench` (detection recall by face size) and by the small-face tests. Never: reads files
or runs a model; photos and their face boxes come in as arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edgeface.regions import Rect
from edgeface.types import Box, ImageBGR

# Each face is pasted with this much of its photo around it, as a fraction of the face width.
_CONTEXT = 0.4


@dataclass(frozen=True)
class Scene:
    image: ImageBGR
    faces: list[Box]  # where each pasted face is, in frame pixels


def compose_scene(
    photos: Sequence[tuple[ImageBGR, Box]],
    background: ImageBGR,
    face_widths: Sequence[float],
    rng: np.random.Generator,
    area: Rect | None = None,
) -> Scene:
    """Paste `photos` (cycled) into a copy of `background`, one per width in `face_widths`.

    Faces land inside `area` (default the whole frame) without overlapping (give the largest
    first); a face that finds
    no free place in 500 tries is left out, so `faces` may be shorter than `face_widths`.
    """
    image = background.copy()
    height, width = image.shape[:2]
    area = area or Rect(0, 0, width, height)
    placed: list[Rect] = []
    faces: list[Box] = []
    for i, face_width in enumerate(face_widths):
        photo, box = photos[i % len(photos)]
        scale = face_width / box.w
        margin = _CONTEXT * box.w
        x0, y0 = max(0, round(box.x - margin)), max(0, round(box.y - margin))
        x1 = min(photo.shape[1], round(box.x + box.w + margin))
        y1 = min(photo.shape[0], round(box.y + box.h + margin))
        patch = cv2.resize(
            photo[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
        )
        ph, pw = patch.shape[:2]
        if pw >= area.w or ph >= area.h:
            continue
        for _ in range(500):
            px = int(rng.integers(area.x, area.x + area.w - pw))
            py = int(rng.integers(area.y, area.y + area.h - ph))
            spot = Rect(px, py, pw, ph)
            if not any(_overlap(spot, other) for other in placed):
                break
        else:
            continue
        placed.append(spot)
        image[py : py + ph, px : px + pw] = patch
        faces.append(
            Box(px + (box.x - x0) * scale, py + (box.y - y0) * scale, face_width, box.h * scale)
        )
    return Scene(image, faces)


def _overlap(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h
