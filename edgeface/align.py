"""Alignment: from a detected face to an upright, square crop at the embedder's input size.

Owns: the two crop geometries an embedder can ask for (its manifest `alignment`) and one affine
warp straight from the frame, plus a sharpness measure of the crop.
- `box`: centre, size and rotation from the face box and the eye keypoints (FaceNet).
- `five_point`: the similarity transform that best puts the detector's landmarks on the
  112x112 ArcFace template (SFace), as OpenCV's FaceRecognizerSF.alignCrop does. With YuNet's
  five landmarks; with BlazeFace's keypoints, its eyes, nose tip and mouth centre are put on the
  template's eyes, nose and the midpoint of its mouth corners.
Never: runs a model or reads files.

Why the box geometry: FaceNet was trained on MTCNN boxes plus a margin; the margin must scale
with the face (a fixed pixel margin hurts large photos), and BlazeFace boxes are tighter than
MTCNN's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edgeface.errors import EdgefaceError
from edgeface.types import AlignedFace, Face, ImageBGR

# Bump when a crop geometry changes: cached gallery embeddings depend on it.
ALIGNMENT_VERSION = "a1"
FIVE_POINT_VERSION = "p1"
ALIGNMENTS = ("box", "five_point")

# The ArcFace template at 112x112 (insightface; OpenCV's FaceRecognizerSF): image-left eye,
# image-right eye, nose tip, image-left mouth corner, image-right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
TEMPLATE_SIZE = 112


@dataclass(frozen=True)
class AlignSettings:
    size: int = 160
    margin: float = 0.2  # extra context, as a fraction of the face box side (box geometry)
    level_eyes: bool = True
    method: str = "box"  # one of ALIGNMENTS

    def __post_init__(self) -> None:
        if self.method not in ALIGNMENTS:
            raise EdgefaceError(
                f"alignment {self.method!r}: expected one of {', '.join(ALIGNMENTS)}"
            )

    @property
    def version(self) -> str:
        """What a cached embedding's crop depended on."""
        if self.method == "five_point":
            return f"{FIVE_POINT_VERSION}/s{self.size}"
        return f"{ALIGNMENT_VERSION}/m{self.margin:g}"


def crop_transform(face: Face, settings: AlignSettings) -> np.ndarray:
    """2x3 affine matrix mapping frame pixels to crop pixels."""
    if settings.method == "five_point":
        return five_point_transform(face, settings.size)
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


def template_points(face: Face) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The face's points and where the ArcFace template puts them (112x112 pixels).

    Five landmarks when the detector gives them; otherwise the first four keypoints read as
    BlazeFace's (eye, eye, nose tip, mouth centre), the mouth centre aimed at the midpoint of
    the template's mouth corners.
    """
    if face.landmarks is not None and len(face.landmarks) == 5:
        return np.asarray(face.landmarks, dtype=np.float64), ARCFACE_TEMPLATE
    if len(face.keypoints) < 4:
        raise EdgefaceError(
            f"five-point alignment: the detector gave {len(face.keypoints)} keypoints and no"
            f" landmarks; it needs eyes, nose and mouth"
        )
    points = np.asarray(face.keypoints[:4], dtype=np.float64)
    if points[1, 0] < points[0, 0]:  # image-left eye first, as in the template
        points[[0, 1]] = points[[1, 0]]
    template = np.vstack([ARCFACE_TEMPLATE[:3], ARCFACE_TEMPLATE[3:].mean(axis=0)])
    return points, template


def similarity_transform(
    source: npt.NDArray[np.float64], target: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The least-squares rotation + uniform scale + translation taking `source` onto `target`
    (Umeyama 1991), as a 2x3 matrix."""
    mean_s, mean_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mean_s, target - mean_t
    covariance = t.T @ s / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1.0
    rotation = u @ d @ vt
    variance = (s**2).sum() / len(source)
    scale = float(np.trace(np.diag(singular) @ d) / max(variance, 1e-12))
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mean_t - scale * rotation @ mean_s
    return matrix


def five_point_transform(face: Face, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """2x3 matrix putting the face's landmarks on the ArcFace template, scaled to `size`."""
    points, template = template_points(face)
    return similarity_transform(points, template * (size / TEMPLATE_SIZE))


def head_turn(face: Face) -> float | None:
    """How far the head is turned sideways, from the five landmarks; None without them.

    The nose tip's offset from the eyes' midpoint along the eye line, in eye distances: about 0
    for a frontal face, rising quickly as the head turns (the eyes close up, the nose moves out).
    BlazeFace's keypoints are too coarse for it (measured, README "Operating points"), so only
    detectors that give landmarks (YuNet) get a value.
    """
    if face.landmarks is None or len(face.landmarks) < 3:
        return None
    left, right, nose = (np.asarray(p, dtype=np.float64) for p in face.landmarks[:3])
    eye_line = right - left
    distance = float(np.linalg.norm(eye_line))
    if distance < 1e-6:
        return float("inf")
    return abs(float((nose - (left + right) / 2) @ eye_line)) / distance**2


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
