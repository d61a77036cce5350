"""Face detection with MediaPipe BlazeFace (short- or full-range) TFLite models.

Owns: letterboxing a BGR image to the detector input, SSD anchors, decoding boxes and the six
keypoints, sigmoid scores, weighted non-maximum suppression, the minimum face size, and the
"retry on a padded canvas" pass for photos where the face fills the frame.
Never: reads files or knows about tracking, alignment or the gallery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edgeface.types import Box, Face, ImageBGR

# MediaPipe clips raw logits at +-100; 80 keeps exp() finite in float32.
_RAW_SCORE_LIMIT = 80.0
_NUM_KEYPOINTS = 6
# Bump when preprocessing or decoding changes what is found: cached gallery results depend on it.
DETECTION_VERSION = "d3"


@dataclass(frozen=True)
class AnchorSpec:
    """MediaPipe SSD anchor options for one BlazeFace variant."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_cell_extra: bool  # interpolated_scale_aspect_ratio == 1.0 adds one anchor


ANCHOR_SPECS: dict[str, AnchorSpec] = {
    "short": AnchorSpec(input_size=128, strides=(8, 16, 16, 16), anchors_per_cell_extra=True),
    "full": AnchorSpec(input_size=192, strides=(4,), anchors_per_cell_extra=False),
}


def generate_anchors(spec: AnchorSpec) -> npt.NDArray[np.float32]:
    """Anchor centres (N x 2, normalised to [0, 1]) in MediaPipe's order."""
    centres: list[tuple[float, float]] = []
    layer = 0
    strides = spec.strides
    while layer < len(strides):
        stride = strides[layer]
        per_cell = 0
        # Consecutive layers with the same stride share one grid in MediaPipe.
        while layer < len(strides) and strides[layer] == stride:
            per_cell += 2 if spec.anchors_per_cell_extra else 1
            layer += 1
        grid = int(np.ceil(spec.input_size / stride))
        for y in range(grid):
            for x in range(grid):
                centres.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell)
    return np.asarray(centres, dtype=np.float32)


class InferenceModel(Protocol):
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]  # of the first output

    def run(self, batch: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]: ...

    def multiply_accumulates(self) -> int: ...


@dataclass(frozen=True)
class DetectorSettings:
    """What the config asks of a detector; each detector uses the fields that apply to it."""

    min_score: float = 0.5
    nms_iou: float = 0.3
    min_face_px: int = 20  # smaller faces are dropped
    retry_padded: bool = True  # BlazeFace: a second pass on a padded canvas when none is found
    # YuNet: the smallest face the search is made to find; it sets the resolution searched at.
    # BlazeFace's input is fixed (192 or 128 px): tiles are its way to smaller faces.
    search_face_px: int = 40


class FaceDetector(Protocol):
    """What the analyzer, the frame search and the bench need of a detector (BlazeFace, YuNet)."""

    settings: DetectorSettings

    def detect(self, image: ImageBGR) -> list[Face]:
        """Faces in image pixels, largest first."""
        ...

    def with_settings(self, settings: DetectorSettings) -> FaceDetector:
        """The same model with other thresholds."""
        ...

    def multiply_accumulates(self, width: int, height: int) -> int:
        """Model work of one search of a width x height image (BlazeFace's retry not counted)."""
        ...


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed into the square detector input."""

    scale: float  # input pixels per image pixel
    pad_x: float
    pad_y: float


def letterbox(
    image: ImageBGR, size: int, shrink: float = 1.0
) -> tuple[npt.NDArray[np.float32], Letterbox]:
    """Resize keeping aspect ratio, centre on a size x size canvas, RGB scaled to [-1, 1].

    Bilinear, as MediaPipe's own image-to-tensor step feeds BlazeFace (and ten times cheaper than
    area averaging on a 640x360 frame). `shrink` > 1 leaves that much more border around the
    image (the padded retry), computed on the small canvas so a huge or extremely thin image
    never needs a huge intermediate.
    """
    h, w = image.shape[:2]
    scale = size / (max(h, w) * shrink)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = cv2.copyMakeBorder(
        resized,
        pad_y,
        size - new_h - pad_y,
        pad_x,
        size - new_w - pad_x,
        cv2.BORDER_CONSTANT,
        value=(0, 0, 0),
    )
    tensor = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)
    # In place: this runs on every frame, and temporaries cost more than the arithmetic.
    tensor *= 1 / 127.5
    tensor -= 1.0
    return tensor, Letterbox(scale=scale, pad_x=pad_x, pad_y=pad_y)


def weighted_nms(
    boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], iou_threshold: float
) -> list[tuple[npt.NDArray[np.float32], float]]:
    """MediaPipe's weighted NMS: overlapping candidates are averaged, weighted by score.

    `boxes` rows are [xmin, ymin, xmax, ymax, kp0x, kp0y, ...]; returns (row, best score) pairs.
    """
    order = np.argsort(-scores)
    remaining = order
    kept: list[tuple[npt.NDArray[np.float32], float]] = []
    while remaining.size:
        best = remaining[0]
        b = boxes[remaining, :4]
        x1 = np.maximum(b[:, 0], boxes[best, 0])
        y1 = np.maximum(b[:, 1], boxes[best, 1])
        x2 = np.minimum(b[:, 2], boxes[best, 2])
        y2 = np.minimum(b[:, 3], boxes[best, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        best_area = areas[0]
        iou = inter / np.maximum(areas + best_area - inter, 1e-9)
        cluster = remaining[iou > iou_threshold]
        weights = scores[cluster]
        merged = (boxes[cluster] * weights[:, None]).sum(axis=0) / weights.sum()
        kept.append((merged.astype(np.float32), float(scores[best])))
        remaining = remaining[iou <= iou_threshold]
    return kept


class BlazeFaceDetector:
    """Runs a BlazeFace TFLite model on BGR images and returns faces in image pixels."""

    def __init__(
        self, model: InferenceModel, anchors: str, settings: DetectorSettings | None = None
    ) -> None:
        self.model = model
        self.spec = ANCHOR_SPECS[anchors]
        self.settings = settings or DetectorSettings()
        self.anchors = generate_anchors(self.spec)
        if model.input_shape[1] != self.spec.input_size:
            raise ValueError(
                f"detector input {model.input_shape} does not fit anchors {anchors!r}"
                f" ({self.spec.input_size}px)"
            )

    @property
    def input_size(self) -> int:
        """Side of the square the model sees, in pixels (192 full-range, 128 short-range)."""
        return self.spec.input_size

    @property
    def anchors_name(self) -> str:
        return next(name for name, spec in ANCHOR_SPECS.items() if spec is self.spec)

    def with_settings(self, settings: DetectorSettings) -> BlazeFaceDetector:
        return BlazeFaceDetector(self.model, self.anchors_name, settings)

    def multiply_accumulates(self, width: int, height: int) -> int:
        """One pass whatever the image size: it is squeezed into the model's square input."""
        return self.model.multiply_accumulates()

    def detect(self, image: ImageBGR) -> list[Face]:
        """All faces above the score and size thresholds, largest first.

        When nothing is found, retry once with the image centred on a canvas twice its size:
        the full-range model misses faces that are large in the picture (a portrait, or someone
        close to a camera: faces of a third of a 640x360 frame's height and more).
        """
        faces = self._detect_once(image, canvas_factor=1.0)
        if not faces and self.settings.retry_padded:
            faces = self._detect_once(image, canvas_factor=2.0)
        return faces

    def _detect_once(self, image: ImageBGR, canvas_factor: float) -> list[Face]:
        size = self.spec.input_size
        tensor, box = letterbox(image, size, shrink=canvas_factor)
        outputs = self.model.run(tensor[np.newaxis])
        raw_boxes, raw_scores = _split_outputs(outputs)
        scores = _sigmoid(raw_scores)
        # Decode only the candidates: a frame has thousands of anchors and a handful of faces.
        candidates = np.flatnonzero(scores >= self.settings.min_score)
        decoded = self._decode(raw_boxes[candidates], self.anchors[candidates])
        valid = decoded[:, 2] > decoded[:, 0]
        if not valid.any():
            return []
        merged = weighted_nms(decoded[valid], scores[candidates][valid], self.settings.nms_iou)
        faces = []
        for row, score in merged:
            pts = row.reshape(-1, 2) * size
            pts[:, 0] = (pts[:, 0] - box.pad_x) / box.scale
            pts[:, 1] = (pts[:, 1] - box.pad_y) / box.scale
            (x1, y1), (x2, y2) = pts[0], pts[1]
            face_box = Box(float(x1), float(y1), float(x2 - x1), float(y2 - y1))
            if min(face_box.w, face_box.h) < self.settings.min_face_px:
                continue
            keypoints = tuple((float(x), float(y)) for x, y in pts[2:])
            faces.append(Face(box=face_box, keypoints=keypoints, score=score))
        faces.sort(key=lambda f: f.box.area, reverse=True)
        return faces

    def _decode(
        self, raw: npt.NDArray[np.float32], anchors: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        size = float(self.spec.input_size)
        points = raw.reshape(-1, 2 + _NUM_KEYPOINTS, 2) / size
        centre = points[:, 0] + anchors
        half = points[:, 1] / 2
        keypoints = points[:, 2:] + anchors[:, None, :]
        corners = np.concatenate([centre - half, centre + half], axis=1)
        return np.concatenate([corners, keypoints.reshape(len(raw), 2 * _NUM_KEYPOINTS)], axis=1)


def _split_outputs(
    outputs: list[npt.NDArray[np.float32]],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Pick regressors (last dim 16) and scores (last dim 1) whatever the converter named them."""
    by_width = {o.shape[-1]: o for o in outputs}
    return by_width[16].reshape(-1, 16), by_width[1].reshape(-1)


def _sigmoid(raw: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    clipped = np.clip(raw, -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)
    return (1.0 / (1.0 + np.exp(-clipped))).astype(np.float32)
