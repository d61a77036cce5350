"""BlazeFace decoding on plain arrays: anchors, letterbox geometry, weighted NMS, box mapping."""

from __future__ import annotations

import numpy as np

from edgeface.detect import (
    ANCHOR_SPECS,
    BlazeFaceDetector,
    generate_anchors,
    letterbox,
    weighted_nms,
)


def test_anchor_counts_match_the_models():
    assert len(generate_anchors(ANCHOR_SPECS["short"])) == 896
    assert len(generate_anchors(ANCHOR_SPECS["full"])) == 2304
    full = generate_anchors(ANCHOR_SPECS["full"])
    assert np.allclose(full[0], [0.5 / 48, 0.5 / 48])
    assert np.allclose(full[-1], [47.5 / 48, 47.5 / 48])


def test_letterbox_centres_a_wide_image():
    image = np.zeros((100, 200, 3), np.uint8)
    tensor, box = letterbox(image, 128)
    assert tensor.shape == (128, 128, 3)
    assert box.scale == 128 / 200
    assert box.pad_x == 0 and box.pad_y == 32
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.9, 0.6, 0.8], dtype=np.float32)
    kept = weighted_nms(boxes, scores, 0.3)
    assert len(kept) == 2
    merged, score = kept[0]
    assert score == np.float32(0.9)
    assert 0 < merged[0] < 1  # pulled towards the second box by its weight
    assert np.allclose(kept[1][0], boxes[2])


class _FakeModel:
    """Returns one strong face at a chosen anchor; lets the decoder be tested without TFLite."""

    def __init__(self, anchor: int, size: int, count: int) -> None:
        self.input_shape = (1, size, size, 3)
        self.anchor, self.count, self.size = anchor, count, size

    def run(self, batch):
        boxes = np.zeros((1, self.count, 16), np.float32)
        scores = np.full((1, self.count, 1), -50.0, np.float32)
        boxes[0, self.anchor, 2:4] = 48  # width and height in input pixels
        scores[0, self.anchor, 0] = 10.0
        return [boxes, scores]


def test_decoded_box_maps_back_to_image_pixels():
    spec = ANCHOR_SPECS["full"]
    anchors = generate_anchors(spec)
    target = int(np.argmin(np.abs(anchors - [0.5, 0.5]).sum(axis=1)))
    detector = BlazeFaceDetector(_FakeModel(target, 192, 2304), "full")
    image = np.zeros((400, 800, 3), np.uint8)  # letterboxed: scale 192/800, pad_y 48
    faces = detector.detect(image)
    assert len(faces) == 1
    box = faces[0].box
    cx, cy = anchors[target] * 192
    assert abs(box.w - 48 * 800 / 192) < 1
    assert abs((box.x + box.w / 2) - cx * 800 / 192) < 1
    assert abs((box.y + box.h / 2) - (cy - 48) * 800 / 192) < 1
