"""Face detection with OpenCV Zoo's YuNet (2023mar) through `cv2.FaceDetectorYN`.

Owns: choosing the scales an image is searched at (the finest so that the smallest wanted face
reaches the size YuNet still finds, coarser ones so that a face filling the image fits its
largest anchors), running YuNet at each, mapping boxes and the five landmarks back to image
pixels, and merging the duplicates a face leaves at neighbouring scales.
Never: reads images, knows about regions of interest, tracking or alignment.

YuNet is fully convolutional (strides 8, 16 and 32; OpenCV pads the input to a multiple of 32),
so it takes any input size; its cost grows with the pixels it sees, about 840 multiply-adds per
input pixel (86 M at 320x320). Measured on scikit-image's astronaut pasted at known sizes (OpenCV
5.1): faces from 10 px of input are found, faces above about 250 px come with part-of-face boxes
and above 450 px are missed. A search therefore shrinks the image so that its smallest wanted
face spans `SMALLEST_INPUT_FACE` px (never enlarges it), and adds coarser passes until a face as
large as the image's shorter side fits `COARSEST_SIDE` px.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from edgeface.detect import DetectorSettings
from edgeface.errors import EdgefaceError
from edgeface.regions import merge_faces
from edgeface.types import Box, Face, ImageBGR

# Input pixels the smallest wanted face is shrunk to. Measured (README "Detection") on real faces
# pasted at 40-120 px into the 1080p no-face scenes: 270 LFW faces were all found at 16 and at
# 20 px; scikit-image's astronaut at 40-60 px scored lower (found at score 0.7: 62 % at 16 px,
# 90 % at 20 px).
SMALLEST_INPUT_FACE = 20.0
# A face is at most about as large as the image's shorter side. Passes are added, each
# PYRAMID_STEP times coarser, until that side fits this many input pixels: a face filling the
# picture then lies inside the range YuNet finds cleanly (a 640x480 frame needs one pass).
COARSEST_SIDE = 256
# Each pass finds faces of ~14 to ~256 input px; a factor of 4 between passes overlaps them.
PYRAMID_STEP = 4.0
# The score a face must reach unless recognition.detector_min_score says otherwise: the highest
# false face on the no-face scenes (`edgeface.noface`, 1080p and 640x480) scored 0.67; at 0.75
# the faces above were found as at 0.7 (LFW 100 %, astronaut 98 %).
DEFAULT_MIN_SCORE = 0.75
# Multiply-adds per input pixel, from the published 86 M at 320x320 (OpenCV Zoo's table).
MACS_PER_PIXEL = 86e6 / (320 * 320)
# YuNet's boxes reach up to the hairline and vary more with pose than the crop geometry of
# `edgeface.align` (box centre and side, plus a margin) wants, so the reported box is rebuilt from
# the five landmarks. Fitted on 112 shared photos where BlazeFace also found the face, BlazeFace's
# box is side = 2.205 x eyes-to-mouth + 0.342 x eye-to-eye (median error 3.7 %), centred 0.017 of
# its side above the landmarks' centroid. Sweeping side and centre around that fit on the 10
# LFW identities of faces2, the MS-Celeb FaceNet separated genuine pairs from impostors as well as
# with BlazeFace's boxes (mean cosine 0.715 vs 0.714, impostors 0.083 vs 0.081) at 0.95 of that
# side and 0.1 of it above the centroid; with the fit itself genuine pairs scored 0.705.
BOX_FROM_EYES_TO_MOUTH = 2.09
BOX_FROM_EYE_TO_EYE = 0.32
BOX_RISE = 0.1
# OpenCV's own candidate cap; far above any real scene.
_TOP_K = 5000
_LANDMARKS = 5


def opencv_supports_yunet() -> bool:
    """`cv2.FaceDetectorYN` with the 2023mar model's dynamic input: OpenCV 4.8 and later."""
    major, minor = (int(p) for p in cv2.__version__.split(".")[:2])
    return (major, minor) >= (4, 8) and hasattr(cv2, "FaceDetectorYN")


def search_scales(width: int, height: int, smallest_face_px: float) -> list[float]:
    """Scales (input px per image px) an image is searched at, finest first."""
    shorter = min(width, height)
    scale = min(1.0, SMALLEST_INPUT_FACE / max(smallest_face_px, 1.0))
    scales = [scale]
    while shorter * scale > COARSEST_SIDE * 1.01:
        scale = max(scale / PYRAMID_STEP, COARSEST_SIDE / shorter)
        scales.append(scale)
    return scales


def _input_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


class YuNetDetector:
    """Runs YuNet on BGR images and returns faces with five landmarks, in image pixels.

    `settings.search_face_px` is the smallest face the search is made to find; faces below
    `settings.min_face_px` are dropped. One OpenCV detector object, resized when the input size
    changes (a camera's frames all share one size, so that happens once per scale).
    """

    def __init__(self, path: Path, settings: DetectorSettings | None = None) -> None:
        if not opencv_supports_yunet():
            raise EdgefaceError(
                f"model {path.name}: YuNet needs OpenCV 4.8 or later (cv2.FaceDetectorYN),"
                f" this is {cv2.__version__}; pip install 'opencv-python-headless>=4.8'"
            )
        self.path = path
        self.settings = settings or DetectorSettings()
        # OpenCV 5 warns on stderr that its new graph engine ignores the (default) target, each
        # time a model is loaded: noise in the daemon's log and in one-line CLI errors.
        log_level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._yunet = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), self.settings.min_score, self.settings.nms_iou, _TOP_K
            )
        except cv2.error as exc:
            raise EdgefaceError(f"model {path}: OpenCV cannot load it as YuNet ({exc})") from None
        finally:
            cv2.utils.logging.setLogLevel(log_level)
        self._size = (320, 320)

    def with_settings(self, settings: DetectorSettings) -> YuNetDetector:
        """The same model with other thresholds (a fresh OpenCV object: it holds them)."""
        return YuNetDetector(self.path, settings)

    def multiply_accumulates(self, width: int, height: int) -> int:
        """Model work to search one width x height image (inputs padded to multiples of 32)."""
        total = 0.0
        for scale in search_scales(width, height, self.settings.search_face_px):
            w, h = _input_size(width, height, scale)
            total += math.ceil(w / 32) * 32 * math.ceil(h / 32) * 32 * MACS_PER_PIXEL
        return round(total)

    def detect(self, image: ImageBGR) -> list[Face]:
        """All faces above the score and size thresholds, largest first."""
        height, width = image.shape[:2]
        found = []
        for scale in search_scales(width, height, self.settings.search_face_px):
            found += self._detect_at(image, scale)
        faces = merge_faces(found, [])
        return [f for f in faces if min(f.box.w, f.box.h) >= self.settings.min_face_px]

    def _detect_at(self, image: ImageBGR, scale: float) -> list[Face]:
        height, width = image.shape[:2]
        size = _input_size(width, height, scale)
        if size == (width, height):
            resized = image
        else:
            # Area averaging when shrinking: bilinear aliases textures into face-like patterns.
            resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if size != self._size:
            self._yunet.setInputSize(size)
            self._size = size
        _, rows = self._yunet.detect(np.ascontiguousarray(resized))
        if rows is None:
            return []
        sx, sy = width / size[0], height / size[1]
        faces = []
        for row in rows:
            points = tuple(
                (float(row[4 + 2 * i]) * sx, float(row[5 + 2 * i]) * sy) for i in range(_LANDMARKS)
            )
            faces.append(
                Face(
                    box=_edgeface_box(points),
                    # OpenCV's order is the ArcFace template's: the eye on the image's left, the
                    # other eye, nose tip, the mouth corner on the image's left, the other.
                    keypoints=points,
                    score=float(row[-1]),
                    landmarks=points,
                )
            )
        return faces


def _edgeface_box(points: tuple[tuple[float, float], ...]) -> Box:
    """The square, BlazeFace-like face box the crop geometry expects, from YuNet's landmarks."""
    p = np.asarray(points, dtype=np.float64)
    eyes, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    side = BOX_FROM_EYES_TO_MOUTH * float(np.linalg.norm(mouth - eyes))
    side += BOX_FROM_EYE_TO_EYE * float(np.linalg.norm(p[1] - p[0]))
    cx, cy = p.mean(axis=0)
    cy -= BOX_RISE * side
    return Box(float(cx) - side / 2, float(cy) - side / 2, side, side)
