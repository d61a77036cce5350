"""Where in a camera frame faces are looked for: the region of interest and the tile pass.

Owns: resolving `camera.roi` (pixels or fractions) against a frame, laying overlapping tiles
over that region, running the detector on the region and a second detector on each tile, mapping
boxes and keypoints back to frame pixels, and merging the duplicates a face leaves in the region
pass and in neighbouring tiles. Never: reads files, loads models or knows about tracking; the
detectors come in as objects with a `detect` method. Gallery photos and `identify` never come
here: a region of interest belongs to a camera, not to a photo.

Why tiles: BlazeFace finds a face reliably only when it spans about an eighth of the detector
input (24 of 192 px for the full-range model), so on a 1920x1080 frame squeezed into 192x192 a
face must be about 240 px wide. The tile pass looks at `tile_size`-pixel squares of the region
with the short-range model (a third of the full-range model's multiply-accumulates), where a
40 px face spans a sixth of a 256 px tile (20 of the 128 px it is scaled to). YuNet needs no
tiles: it searches the region at the resolution its smallest wanted face asks for
(`edgeface.yunet`), so a frame searched with it has no tile detector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edgeface.types import Box, Face, ImageBGR

if TYPE_CHECKING:
    from edgeface.detect import FaceDetector

TileMode = Literal["off", "auto", "on"]

# `auto` tiles a region whose longer side is more than this many detector inputs: a 640x480
# camera (3.3 inputs for the 192 px full-range model) is left alone, 720p and larger are tiled.
AUTO_TILE_FACTOR = 3.5
# Neighbouring tiles overlap by this fraction of a tile, so a face up to a quarter of a tile
# wide lies whole inside one of them.
TILE_OVERLAP = 0.25
# Two boxes are one face when they overlap by this much (IoU), or when the smaller one lies this
# much inside the larger (a face cut by a tile edge leaves a partial box inside the whole one).
MERGE_IOU = 0.3
MERGE_INSIDE = 0.6
# A box this close to a tile's inner edge may belong to a face the tile cuts.
_EDGE_PX = 2.0


@dataclass(frozen=True)
class Rect:
    """An integer rectangle in frame pixels."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class RegionSettings:
    """How camera frames are searched (from `camera.roi` and `detection.*`)."""

    roi: tuple[float, float, float, float] | None = None
    tiles: TileMode = "auto"
    tile_size: int = 256
    max_tiles: int = 12
    # `auto` tiles a region whose longer side exceeds this: AUTO_TILE_FACTOR region-detector
    # inputs (672 px for the 192 px full-range BlazeFace).
    auto_tile_above: int = round(AUTO_TILE_FACTOR * 192)


def resolve_roi(roi: Sequence[float] | None, width: int, height: int) -> Rect:
    """The region in frame pixels: the whole frame, or `roi` clipped to it.

    `roi` is [x, y, w, h] in pixels, or in fractions of the frame when all four are at most 1.
    """
    if roi is None:
        return Rect(0, 0, width, height)
    x, y, w, h = roi
    if max(roi) <= 1.0:
        x, w, y, h = x * width, w * width, y * height, h * height
    x0, y0 = min(max(0, round(x)), width - 1), min(max(0, round(y)), height - 1)
    x1, y1 = min(width, max(x0 + 1, round(x + w))), min(height, max(y0 + 1, round(y + h)))
    return Rect(x0, y0, x1 - x0, y1 - y0)


def _starts(length: int, tile: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - round(tile * TILE_OVERLAP)
    count = math.ceil((length - tile) / stride) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_layout(region: Rect, tile_size: int, max_tiles: int) -> list[Rect]:
    """Overlapping squares covering `region`, evenly spread, at most `max_tiles` of them.

    Tiles grow beyond `tile_size` (finding only larger faces) until the layout fits the budget.
    A region no larger than one tile gets no tiles: the region pass already sees it at that scale.
    """
    tile = tile_size
    while True:
        if region.w <= tile and region.h <= tile:
            return []
        xs, ys = _starts(region.w, tile), _starts(region.h, tile)
        if len(xs) * len(ys) <= max_tiles:
            return [
                Rect(region.x + x, region.y + y, min(tile, region.w), min(tile, region.h))
                for y in ys
                for x in xs
            ]
        tile = math.ceil(tile * 1.1)


def wants_tiles(settings: RegionSettings, region: Rect) -> bool:
    if settings.tiles == "off":
        return False
    if settings.tiles == "on":
        return True
    return max(region.w, region.h) > settings.auto_tile_above


def shifted(face: Face, dx: float, dy: float) -> Face:
    """`face` found in a crop whose top-left corner is at (dx, dy) of the frame."""
    box = face.box
    return Face(
        box=Box(box.x + dx, box.y + dy, box.w, box.h),
        keypoints=tuple((x + dx, y + dy) for x, y in face.keypoints),
        score=face.score,
        landmarks=None
        if face.landmarks is None
        else tuple((x + dx, y + dy) for x, y in face.landmarks),
    )


def _same_face(a: Box, b: Box) -> bool:
    if a.iou(b) > MERGE_IOU:
        return True
    x1, y1 = max(a.x, b.x), max(a.y, b.y)
    x2, y2 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    smaller = min(a.area, b.area)
    return smaller > 0 and inter / smaller > MERGE_INSIDE


def cut_by_tile(box: Box, tile: Rect, region: Rect) -> bool:
    """Whether `box` reaches an edge of `tile` inside the region (the face may go on beyond)."""
    inner_left, inner_top = tile.x > region.x, tile.y > region.y
    inner_right = tile.x + tile.w < region.x + region.w
    inner_bottom = tile.y + tile.h < region.y + region.h
    return (
        (inner_left and box.x <= tile.x + _EDGE_PX)
        or (inner_top and box.y <= tile.y + _EDGE_PX)
        or (inner_right and box.x + box.w >= tile.x + tile.w - _EDGE_PX)
        or (inner_bottom and box.y + box.h >= tile.y + tile.h - _EDGE_PX)
    )


def merge_faces(region_faces: list[Face], tile_faces: list[tuple[Face, bool]]) -> list[Face]:
    """One box per face, largest first: whole tile boxes, then region boxes, then cut tile boxes.

    `tile_faces` pairs each face with whether its tile cut it (`cut_by_tile`). A tile sees a
    face at a higher resolution than the region pass, so its box is the better one unless the
    tile cut the face; the overlap makes a neighbouring tile, or the region pass, hold it whole.
    Within each kind the more confident box wins.
    """
    ranked = sorted(tile_faces, key=lambda fc: (fc[1], -fc[0].score))
    whole = [f for f, cut in ranked if not cut]
    cut = [f for f, is_cut in ranked if is_cut]
    kept: list[Face] = []
    for face in [*whole, *sorted(region_faces, key=lambda f: -f.score), *cut]:
        if not any(_same_face(face.box, k.box) for k in kept):
            kept.append(face)
    kept.sort(key=lambda f: f.box.area, reverse=True)
    return kept


class FrameDetector:
    """Finds faces in camera frames: the region of interest, then tiles when they pay.

    `tile_detector` None: no tile pass whatever the settings say (YuNet).
    """

    def __init__(
        self,
        detector: FaceDetector,
        tile_detector: FaceDetector | None,
        settings: RegionSettings,
    ) -> None:
        self.detector, self.tile_detector, self.settings = detector, tile_detector, settings

    def plan(self, width: int, height: int) -> tuple[Rect, list[Rect]]:
        """The region and the tiles a frame of this size is searched with."""
        region = resolve_roi(self.settings.roi, width, height)
        if self.tile_detector is None or not wants_tiles(self.settings, region):
            return region, []
        return region, tile_layout(region, self.settings.tile_size, self.settings.max_tiles)

    def detect(self, image: ImageBGR) -> list[Face]:
        """Faces in frame pixels, largest first."""
        region, tiles = self.plan(image.shape[1], image.shape[0])
        found = self.detector.detect(_crop(image, region))
        region_faces = [shifted(f, region.x, region.y) for f in found]
        tile_faces = []
        for tile in tiles:
            assert self.tile_detector is not None  # plan() lays tiles only when there is one
            for found_in_tile in self.tile_detector.detect(_crop(image, tile)):
                face = shifted(found_in_tile, tile.x, tile.y)
                tile_faces.append((face, cut_by_tile(face.box, tile, region)))
        return merge_faces(region_faces, tile_faces)

    def multiply_accumulates(self, width: int, height: int) -> int:
        """Model work of searching one frame of this size (region pass plus tiles)."""
        region, tiles = self.plan(width, height)
        total = self.detector.multiply_accumulates(region.w, region.h)
        for tile in tiles:
            assert self.tile_detector is not None
            total += self.tile_detector.multiply_accumulates(tile.w, tile.h)
        return total


def _crop(image: ImageBGR, rect: Rect) -> ImageBGR:
    return image[rect.y : rect.y + rect.h, rect.x : rect.x + rect.w]
