"""Small faces in a 1920x1080 frame: region of interest and tile pass through the real detectors.

These pin BlazeFace (`blazeface-full`, tiles from `blazeface-short`): tiles are its way to small
faces. The default detector, YuNet, needs none (tests/integration/test_yunet.py).

Real face photos (LFW from ../shared/data/faces2, and scikit-image's packaged faces so something
runs without ../shared) are pasted at 40-120 px into a 1920x1080 frame. The cost of a frame is
counted, never timed: each model call weighs its model's multiply-accumulates, and one pass of
the full-range detector over the whole frame is the unit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edgeface.analyzer import FaceAnalyzer, frame_detector
from edgeface.config import parse_config
from edgeface.detect import BlazeFaceDetector
from edgeface.regions import FrameDetector, Rect
from edgeface.scene import Scene, compose_scene
from edgeface.types import Box, ImageBGR

FACES2 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces2"
# The documented setting for a 1080p camera (README, "Distant faces"): a region of interest of
# about 640x360 where faces first appear, and `detection.tiles: on`.
DOCUMENTED_ROI = (640, 360, 640, 360)
BLAZEFACE = {"models": {"detector": "blazeface-full"}}


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer.from_config(parse_config(BLAZEFACE))


class CountingModel:
    """Passes calls through to a real model and counts them."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls = model, 0
        self.input_shape, self.output_shape = model.input_shape, model.output_shape

    def run(self, batch: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        self.calls += 1
        return list(self.model.run(batch))


def counted(analyzer: FaceAnalyzer, config: dict[str, Any]) -> FrameDetector:
    """The camera-frame search of `config` on real models, each wrapped in a call counter."""
    cfg = parse_config({**BLAZEFACE, **config})
    search = frame_detector(cfg, analyzer.detector, None, analyzer.detector.settings)
    region = BlazeFaceDetector(
        CountingModel(analyzer.detector.model), "full", analyzer.detector.settings
    )
    tiles = search.tile_detector
    assert isinstance(tiles, BlazeFaceDetector)
    tiles = BlazeFaceDetector(
        CountingModel(tiles.model), "short" if tiles.input_size == 128 else "full", tiles.settings
    )
    return FrameDetector(region, tiles, search.settings)


def cost_in_full_passes(search: FrameDetector) -> float:
    """Multiply-accumulates spent so far, in units of one full-range pass."""
    total = 0.0
    unit = search.detector.model.model.multiply_accumulates()  # type: ignore[attr-defined]
    for det in (search.detector, search.tile_detector):
        total += det.model.calls * det.model.model.multiply_accumulates()  # type: ignore[attr-defined]
    return total / unit


def photos_with_boxes(analyzer: FaceAnalyzer, images: list[ImageBGR]) -> list[tuple[ImageBGR, Box]]:
    found = [(image, analyzer.detect(image)) for image in images]
    return [(image, faces[0].box) for image, faces in found if len(faces) == 1]


@pytest.fixture(scope="module")
def background() -> ImageBGR:
    skdata = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) not installed")
    return cv2.resize(cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR), (1920, 1080))


@pytest.fixture(scope="module")
def lfw_photos(analyzer: FaceAnalyzer) -> list[tuple[ImageBGR, Box]]:
    paths = sorted((FACES2 / "lfw_krasserm").glob("*/*.jpg"))
    if not paths:
        pytest.skip(f"LFW photos not found under {FACES2 / 'lfw_krasserm'} (beside the checkout)")
    return photos_with_boxes(analyzer, [cv2.imread(str(p)) for p in paths])


@pytest.fixture(scope="module")
def packaged_photos(analyzer: FaceAnalyzer, astronaut_bgr: ImageBGR) -> list[tuple[ImageBGR, Box]]:
    """scikit-image's astronaut and her mirror image: its 25 px LFW crops are too tight to paste."""
    return photos_with_boxes(analyzer, [astronaut_bgr, cv2.flip(astronaut_bgr, 1)])


def scene_in(
    photos: list[tuple[ImageBGR, Box]], background: ImageBGR, area: Rect, count: int
) -> Scene:
    rng = np.random.default_rng(16)
    return compose_scene(
        photos, background, [float(w) for w in np.linspace(120, 40, count)], rng, area
    )


def found(boxes: list[Box], faces: list[Box], iou: float) -> int:
    return sum(any(b.iou(f) >= iou for b in boxes) for f in faces)


@pytest.mark.parametrize("photo_set", ["lfw_photos", "packaged_photos"])
def test_documented_setting_finds_40px_faces_in_a_roi_at_most_3_passes(
    request: pytest.FixtureRequest, analyzer: FaceAnalyzer, background: ImageBGR, photo_set: str
) -> None:
    photos = request.getfixturevalue(photo_set)
    roi = Rect(*DOCUMENTED_ROI)
    scene = scene_in(photos, background, roi, 7)
    assert len(scene.faces) >= 6
    search = counted(
        analyzer, {"camera": {"roi": list(DOCUMENTED_ROI)}, "detection": {"tiles": "on"}}
    )
    boxes = [f.box for f in search.detect(scene.image)]
    # Found, and reported where they were pasted in the frame (not in ROI or tile pixels).
    assert found(boxes, scene.faces, iou=0.5) >= 0.9 * len(scene.faces), (boxes, scene.faces)
    assert search.tile_detector.model.calls > 0  # type: ignore[attr-defined]
    assert cost_in_full_passes(search) <= 3.0
    # The same frame searched as before regions existed (whole frame, one pass) misses some.
    whole = counted(analyzer, {"detection": {"tiles": "off"}})
    assert found([f.box for f in whole.detect(scene.image)], scene.faces, iou=0.5) < len(
        scene.faces
    )


def test_tiles_on_find_40px_faces_anywhere_in_1080p(
    lfw_photos: list[tuple[ImageBGR, Box]], analyzer: FaceAnalyzer, background: ImageBGR
) -> None:
    """Without a ROI the whole frame needs 60 tiles: found, at a cost the bench reports."""
    scene = scene_in(lfw_photos, background, Rect(0, 0, 1920, 1080), 30)
    assert len(scene.faces) >= 25
    search = counted(analyzer, {"detection": {"tiles": "on", "max_tiles": 60}})
    boxes = [f.box for f in search.detect(scene.image)]
    assert found(boxes, scene.faces, iou=0.5) >= 0.9 * len(scene.faces), (boxes, scene.faces)


def test_default_setting_costs_nothing_extra_at_640x480(
    analyzer: FaceAnalyzer, astronaut_bgr: ImageBGR
) -> None:
    frame = cv2.resize(astronaut_bgr, (640, 480))
    search = counted(analyzer, {})
    assert len(search.detect(frame)) == 1
    assert (search.detector.model.calls, search.tile_detector.model.calls) == (1, 0)  # type: ignore[attr-defined]


def test_tiles_are_off_by_default_and_tile_faces_must_clear_their_own_score(
    analyzer: FaceAnalyzer,
) -> None:
    """A false face in the scenery becomes an `unknown` event: tiles are opt-in, and a face seen
    only in a tile must reach `detection.tile_min_score` (texture fools the small tiles)."""
    default = frame_detector(
        parse_config(BLAZEFACE), analyzer.detector, None, analyzer.detector.settings
    )
    assert default.plan(1920, 1080)[1] == []
    strict = frame_detector(
        parse_config({**BLAZEFACE, "detection": {"tiles": "on", "tile_min_score": 0.8}}),
        analyzer.detector,
        None,
        analyzer.detector.settings,
    )
    assert isinstance(strict.tile_detector, BlazeFaceDetector)
    assert strict.tile_detector.settings.min_score == 0.8
    assert analyzer.detector.settings.min_score < 0.8  # the region pass keeps its own
