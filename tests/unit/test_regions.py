"""Region of interest and tile pass (`edgeface.regions`) on plain arrays with a stub detector."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest

from edgeface.config import ConfigError, parse_config
from edgeface.regions import (
    FrameDetector,
    Rect,
    RegionSettings,
    merge_faces,
    resolve_roi,
    roi_outside,
    tile_layout,
)
from edgeface.types import Box, Face, ImageBGR


def face(x: float, y: float, w: float, score: float = 0.9) -> Face:
    return Face(Box(x, y, w, w), ((x + w / 3, y + w / 3), (x + 2 * w / 3, y + w / 3)), score)


class MarkerDetector:
    """Finds a face wherever the image holds a white square, in the image's own pixels."""

    def __init__(self, input_size: int) -> None:
        self.input_size = input_size
        self.calls: list[tuple[int, int]] = []

    def detect(self, image: ImageBGR) -> list[Face]:
        self.calls.append((image.shape[1], image.shape[0]))
        ys, xs = np.nonzero(image[:, :, 0] == 255)
        if not len(xs):
            return []
        x0, y0 = float(xs.min()), float(ys.min())
        return [face(x0, y0, float(xs.max() - x0 + 1))]


def test_roi_in_fractions_and_pixels_clipped_to_the_frame() -> None:
    assert resolve_roi(None, 640, 480) == Rect(0, 0, 640, 480)
    assert resolve_roi((0.25, 0.5, 0.5, 0.5), 1920, 1080) == Rect(480, 540, 960, 540)
    assert resolve_roi((100, 50, 300, 200), 1920, 1080) == Rect(100, 50, 300, 200)
    assert resolve_roi((1800, 1000, 400, 400), 1920, 1080) == Rect(1800, 1000, 120, 80)


def test_tiles_cover_the_region_with_overlap_and_respect_the_budget() -> None:
    region = Rect(100, 40, 720, 360)
    tiles = tile_layout(region, 288, 12)
    assert len(tiles) == 6
    covered = np.zeros((360, 720), bool)
    for t in tiles:
        assert t.w == t.h == 288
        covered[t.y - 40 : t.y - 40 + t.h, t.x - 100 : t.x - 100 + t.w] = True
    assert covered.all()
    xs = sorted({t.x for t in tiles})
    assert min(b - a for a, b in itertools.pairwise(xs)) <= 288 - 72  # overlap >= 72
    small = tile_layout(Rect(0, 0, 1920, 1080), 288, 4)
    assert 0 < len(small) <= 4 and small[0].w > 288
    assert tile_layout(Rect(0, 0, 288, 200), 288, 12) == []


def test_merge_prefers_whole_tile_boxes_then_region_boxes_then_cut_ones() -> None:
    whole = face(100, 100, 60, score=0.7)
    cut = Face(Box(100, 100, 30, 60), whole.keypoints, 0.95)  # the half a tile edge left
    assert merge_faces([], [(cut, True), (whole, False)]) == [whole]
    sloppy = face(90, 95, 80, score=0.9)  # the region pass's coarser box for the same face
    assert merge_faces([sloppy], [(whole, False)]) == [whole]
    assert merge_faces([sloppy], [(cut, True)]) == [sloppy]
    other = face(400, 100, 50, score=0.8)
    kept = merge_faces([other], [(face(402, 101, 49, 0.6), False), (whole, False)])
    assert [f.box.x for f in kept] == [100, 402]


def test_roi_detection_reports_frame_coordinates() -> None:
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[600:660, 1000:1060] = 255  # a "face" inside the ROI
    frame[10:70, 10:70] = 255  # and one outside it
    detector = MarkerDetector(192)
    found = FrameDetector(
        detector, detector, RegionSettings(roi=(900, 500, 400, 300), tiles="off")
    ).detect(frame)
    assert [f.box for f in found] == [Box(1000, 600, 60, 60)]
    assert found[0].keypoints[0] == pytest.approx((1020, 620))
    assert detector.calls == [(400, 300)]


def test_auto_tiles_a_1080p_frame_but_not_640x480() -> None:
    region_pass, tile_pass = MarkerDetector(192), MarkerDetector(128)
    auto = FrameDetector(region_pass, tile_pass, RegionSettings(tiles="auto"))
    auto.detect(np.zeros((480, 640, 3), np.uint8))
    assert (len(region_pass.calls), len(tile_pass.calls)) == (1, 0)
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[500:540, 900:940] = 255
    found = auto.detect(frame)
    tiles = len(tile_pass.calls)
    assert 0 < tiles <= 12  # the default budget
    assert [f.box for f in found] == [Box(900, 500, 40, 40)]  # one face, however many tiles
    off = FrameDetector(region_pass, tile_pass, RegionSettings(tiles="off"))
    off.detect(frame)
    assert len(tile_pass.calls) == tiles


def test_config_roi_and_tiles_keys() -> None:
    cfg = parse_config({"camera": {"roi": [0.1, 0.2, 0.5, 0.5]}, "detection": {"tiles": False}})
    assert cfg.camera.roi == (0.1, 0.2, 0.5, 0.5)
    assert cfg.detection.tiles == "off"  # YAML reads a bare `off` as false
    with pytest.raises(ConfigError, match=r"^c.yaml: camera.roi: expected a list of 4 numbers"):
        parse_config({"camera": {"roi": [1, 2, 3]}}, "c.yaml")
    with pytest.raises(ConfigError, match=r"^c.yaml: camera.roi: expected a width and height"):
        parse_config({"camera": {"roi": [1, 2, 0, 5]}}, "c.yaml")


def test_roi_that_cannot_fit_any_frame_is_refused() -> None:
    for roi in ([0.1, 0.1, 2, 2], [0.5, 0.5, 0.6, 0.2], [0.2, 0.9, 0.5, 0.2], [10.5, 20, 100, 100]):
        with pytest.raises(ConfigError, match=r"^c.yaml: camera.roi: "):
            parse_config({"camera": {"roi": roi}}, "c.yaml")
    for roi in ([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5], [5000, 5000, 100, 100]):
        parse_config({"camera": {"roi": roi}})  # the frame size is known only at run time


def test_roi_outside_the_frame_is_described() -> None:
    assert roi_outside(None, 640, 360) is None
    assert roi_outside((0.5, 0.5, 0.5, 0.5), 640, 360) is None
    assert roi_outside((0, 0, 640, 360), 640, 360) is None
    far = roi_outside((5000, 5000, 100, 100), 640, 360)
    assert far and "lies outside the 640x360 frame" in far
    part = roi_outside((600, 300, 100, 100), 640, 360)
    assert part and "partly outside" in part and "[600, 300, 40, 60]" in part


def test_frame_detector_logs_a_bad_roi_once_per_frame_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    detector = FrameDetector(
        MarkerDetector(192), MarkerDetector(128), RegionSettings((600, 300, 100, 100), "off")
    )
    with caplog.at_level(logging.WARNING, logger="edgeface.regions"):
        for _ in range(3):
            detector.detect(np.zeros((360, 640, 3), np.uint8))
        detector.detect(np.zeros((480, 640, 3), np.uint8))
    assert [r.getMessage().split(" frame")[0] for r in caplog.records] == [
        "camera.roi [600, 300, 100, 100] lies partly outside the 640x360",
        "camera.roi [600, 300, 100, 100] lies partly outside the 640x480",
    ]
