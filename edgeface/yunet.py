"""Face detection with OpenCV Zoo's YuNet (2023mar) through `cv2.FaceDetectorYN`.

Owns: choosing the scales an image is searched at (the finest so that the smallest wanted face
reaches the size YuNet still finds, coarser ones so that a face filling the image fits its largest
anchors; never fewer input pixels than a 320x240 frame's), running YuNet at each, merging the
duplicates a face leaves at neighbouring scales, looking at each face again in a crop around it for
precise landmarks, and mapping boxes and the five landmarks back to image pixels.
Never: reads images, knows about regions of interest, tracking or alignment.

YuNet is fully convolutional (strides 8, 16 and 32; OpenCV pads the input to a multiple of 32), so
it takes any input size; its cost grows with the pixels it sees, about 840 multiply-adds per input
pixel (86 M at 320x320). Measured on scikit-image's astronaut pasted at known sizes (OpenCV 5.1):
faces from 10 px of input are found, faces above about 250 px come with part-of-face boxes and
above 450 px are missed. A search therefore shrinks the image so that its smallest wanted face
spans `SMALLEST_INPUT_FACE` px (never enlarges it, never below `MIN_SEARCH_PIXELS` unless it is
smaller than that already), and adds coarser passes until a face as large as the image's shorter
side fits `COARSEST_SIDE` px.
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

# Input pixels the smallest wanted face is shrunk to. Measured (README "Distant faces") on real
# faces pasted at 40-120 px into the 1080p no-face scenes: of faces2's LFW faces (two draws of
# 240 and 270) 98.9-100 % were found at 16 and at 20 px; scikit-image's astronaut at 40-60 px
# scored lower (found at score 0.7: 62 % at 16 px, 90 % at 20 px).
SMALLEST_INPUT_FACE = 20.0
# A search never shrinks an image below this many pixels (a 320x240 frame's, what a 640x480
# frame is searched at). Small camera frames (352x288 CIF) hold small faces, and halving them put
# their 35-60 px faces at 17-30 px of input, where YuNet misses many; searched at this many
# pixels they cost what a 640x480 frame does (69 M multiply-adds). Measured on 352x288
# surveillance frames (README "Distant faces").
MIN_SEARCH_PIXELS = 320 * 240
# A face is at most about as large as the image's shorter side. Passes are added, each
# PYRAMID_STEP times coarser, until that side fits this many input pixels: a face filling the
# picture then lies inside the range YuNet finds cleanly (a 640x480 frame needs one pass).
COARSEST_SIDE = 256
# Each pass finds faces of ~14 to ~256 input px; a factor of 4 between passes overlaps them.
PYRAMID_STEP = 4.0
# The score a face must reach unless recognition.detector_min_score says otherwise: the highest
# false face on the no-face scenes (`edgeface.noface`, 1080p and 640x480) scored 0.66-0.67; at
# 0.75 the faces above were found as at 0.7 (LFW 100 %, astronaut 98 %).
DEFAULT_MIN_SCORE = 0.75
# Multiply-adds per input pixel, from the published 86 M at 320x320 (OpenCV Zoo's table).
MACS_PER_PIXEL = 86e6 / (320 * 320)
# YuNet's boxes reach up to the hairline; edgeface's box-based crop (`edgeface.align`) and the
# embedders' operating points were measured on BlazeFace's tighter square boxes. On 104 shared
# photos where both found the face, BlazeFace's side was 0.886 of YuNet's longer side (10-90 %:
# 0.82-0.94), so YuNet's box is reported as the square of that side on the same centre. (Boxes
# rebuilt from the five landmarks, or moved down as BlazeFace's centre is, did no better for the
# MS-Celeb FaceNet on faces2: `edgeface eval` missed 3-5 of 142 enrolled photos either way.)
BOX_SIDE = 0.886
# Each face found is looked at again in a square crop of REFINE_CONTEXT times its box, scaled to
# REFINE_INPUT px (the face then spans ~96 px): its landmarks and box come from there. Landmarks of a face found at 20-40 input px move by a pixel or two of input, which
# at 2-4 image px per input px made the crops of one face differ by 10 % between a photo and its
# 0.7x copy. Costs 31 M multiply-adds per face found (FaceNet spends 45x that on the face).
REFINE_INPUT = 192
REFINE_CONTEXT = 2.0
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
    wanted = SMALLEST_INPUT_FACE / max(smallest_face_px, 1.0)
    # An image with fewer pixels than the floor (a thumbnail, a tight face crop: its face fills
    # it) is searched as before: at its own size YuNet's boxes of a face touching the image's
    # edges moved by up to 10 %, and the box-cropping FaceNets lost photos of the shared sets.
    area = width * height
    floor = math.sqrt(MIN_SEARCH_PIXELS / area) if area >= MIN_SEARCH_PIXELS else 0.0
    scale = min(1.0, max(wanted, floor))
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
    `settings.min_face_px` are dropped. Two OpenCV detector objects: the search's, resized when
    the input size changes (a camera's frames share one size, so rarely), and the second look's,
    always REFINE_INPUT square.
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
            self._yunet, self._refiner = (
                cv2.FaceDetectorYN.create(
                    str(path), "", size, self.settings.min_score, self.settings.nms_iou, _TOP_K
                )
                for size in ((320, 320), (REFINE_INPUT, REFINE_INPUT))
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
        faces = [self._refined(image, face) for face in merge_faces(found, [])]
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
        return _decode(rows, width / size[0], height / size[1], 0.0, 0.0)

    def _refined(self, image: ImageBGR, face: Face) -> Face:
        """`face` with landmarks and box from a second look at it in a REFINE_INPUT crop.

        The score stays the first pass's (the threshold was measured on it); a crop where the
        face is not found again leaves it as it was.
        """
        box = face.box
        side = max(1, round(REFINE_CONTEXT * max(box.w, box.h)))
        x0 = round(box.x + box.w / 2 - side / 2)
        y0 = round(box.y + box.h / 2 - side / 2)
        crop = _square_crop(image, x0, y0, side)
        shrinking = side > REFINE_INPUT
        crop = cv2.resize(
            crop,
            (REFINE_INPUT, REFINE_INPUT),
            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        )
        _, rows = self._refiner.detect(crop)
        unit = side / REFINE_INPUT
        again = _decode(rows, unit, unit, float(x0), float(y0))
        if not again:
            return face
        best = max(again, key=lambda f: f.box.iou(box))
        if best.box.iou(box) < 0.3:
            return face
        return Face(best.box, best.keypoints, face.score, best.landmarks)


def _square_crop(image: ImageBGR, x0: int, y0: int, side: int) -> ImageBGR:
    """The side x side square at (x0, y0), black where it leaves the image."""
    inside = image[max(0, y0) : max(0, y0 + side), max(0, x0) : max(0, x0 + side)]
    return cv2.copyMakeBorder(
        inside,
        max(0, -y0),
        side - inside.shape[0] - max(0, -y0),
        max(0, -x0),
        side - inside.shape[1] - max(0, -x0),
        cv2.BORDER_CONSTANT,
        value=(0, 0, 0),
    )


def _decode(rows: np.ndarray | None, sx: float, sy: float, dx: float, dy: float) -> list[Face]:
    """OpenCV's rows (box, five landmarks, score) as faces; image = input x (sx, sy) + (dx, dy)."""
    if rows is None:
        return []
    faces = []
    for row in rows:
        points = tuple(
            (float(row[4 + 2 * i]) * sx + dx, float(row[5 + 2 * i]) * sy + dy)
            for i in range(_LANDMARKS)
        )
        x, y, w, h = (float(v) for v in row[:4])
        faces.append(
            Face(
                box=_edgeface_box(x * sx + dx, y * sy + dy, w * sx, h * sy),
                # OpenCV's order is the ArcFace template's: the eye on the image's left, the
                # other eye, nose tip, the mouth corner on the image's left, the other.
                keypoints=points,
                score=float(row[-1]),
                landmarks=points,
            )
        )
    return faces


def _edgeface_box(x: float, y: float, w: float, h: float) -> Box:
    """YuNet's box as the square, BlazeFace-sized box the crop geometry expects (BOX_SIDE)."""
    side = BOX_SIDE * max(w, h)
    return Box(x + w / 2 - side / 2, y + h / 2 - side / 2, side, side)
