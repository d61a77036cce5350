"""Alignment: from a detected face to an upright, square crop at the embedder's input size.

Owns: the crop geometry (centre, size and rotation from the BlazeFace box and eye keypoints),
one affine warp straight from the frame, and a sharpness measure of the crop.
Never: runs a model or reads files.

Why this geometry: FaceNet was trained on MTCNN boxes plus a margin; the margin must scale with
the face (a fixed pixel margin hurts large photos), and BlazeFace boxes are tighter than MTCNN's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgeface.types import AlignedFace, Face, ImageBGR

# Bump when the crop geometry changes: cached gallery embeddings depend on it.
ALIGNMENT_VERSION = "a1"


@dataclass(frozen=True)
class AlignSettings:
    size: int = 160
    margin: float = 0.2  # extra context, as a fraction of the face box side
    level_eyes: bool = True


def crop_transform(face: Face, settings: AlignSettings) -> np.ndarray:
    """2x3 affine matrix mapping frame pixels to crop pixels."""
    box = face.box
    centre_x = box.x + box.w / 2
    centre_y = box.y + box.h / 2
    side = max(box.w, box.h) * (1.0 + settings.margin)
    angle = 0.0
    if settings.level_eyes and len(face.keypoints) >= 2:
        (x0, y0), (x1, y1) = face.keypoints[0], face.keypoints[1]
        if x1 < x0:  # keep the image-left eye first so the angle is small
            x0, y0, x1, y1 = x1, y1, x0, y0
        angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
    scale = settings.size / max(side, 1.0)
    matrix = cv2.getRotationMatrix2D((centre_x, centre_y), angle, scale)
    matrix[0, 2] += settings.size / 2 - centre_x
    matrix[1, 2] += settings.size / 2 - centre_y
    return matrix


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: low values mean a blurred crop."""
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def align_face(image: ImageBGR, face: Face, settings: AlignSettings | None = None) -> AlignedFace:
    settings = settings or AlignSettings()
    matrix = crop_transform(face, settings)
    scale = math.hypot(matrix[0, 0], matrix[0, 1])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    if scale < 0.5:
        # warpAffine does not low-pass: shrink the frame first so INTER_AREA-like quality holds.
        factor = 1.0 / scale / 1.5
        small = cv2.resize(
            image,
            (max(1, round(image.shape[1] / factor)), max(1, round(image.shape[0] / factor))),
            interpolation=cv2.INTER_AREA,
        )
        matrix = matrix.copy()
        matrix[:, :2] *= factor
        image, interp = small, cv2.INTER_LINEAR
    crop_bgr = cv2.warpAffine(
        image,
        matrix,
        (settings.size, settings.size),
        flags=interp,
        borderMode=cv2.BORDER_REPLICATE,
    )
    gray = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)
    return AlignedFace(
        face=face,
        crop_rgb=cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB),
        sharpness=sharpness(gray),
    )
