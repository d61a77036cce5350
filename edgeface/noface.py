"""Scenes without a face: what a detector's precision is measured on.

Owns: composing 1920x1080 frames with no human face from the photos scikit-image ships (a cat, a
coffee cup, a rocket on a street, a horse, coins, a clock, the Hubble deep field, microscope
slides, printed pages and text, brick/grass/gravel textures): each photo filling the frame, the
textures tiled at their own scale, and "posters" (several photos and printed pages on a brick
wall). Every scene also comes as the 640x480 frame a default camera gives. Deterministic.
Never: runs a model or reads files outside scikit-image's package data.
A false face on these scenes is an `unknown` event in the daemon: `edgeface bench` counts them
per detector setting, and the tests require none at the shipped defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edgeface.types import ImageBGR

# scikit-image photos without a human face (the cameraman and the astronaut have one).
PHOTOS = (
    "coffee",
    "chelsea",
    "rocket",
    "horse",
    "coins",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "moon",
    "cell",
    "logo",
    "colorwheel",
)
PRINTED = ("page", "text", "checkerboard")
TEXTURES = ("brick", "grass", "gravel")
FRAME = (1920, 1080)
SMALL_FRAME = (640, 480)


@dataclass(frozen=True)
class NoFaceScene:
    name: str
    image: ImageBGR


def _as_bgr(image: npt.NDArray[np.generic]) -> ImageBGR:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        top = float(array.max()) or 1.0
        array = (np.clip(array / (top if top > 1 else 1.0), 0, 1) * 255).astype(np.uint8)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(array[..., :3]), cv2.COLOR_RGB2BGR)


def _load(name: str) -> ImageBGR:
    from skimage import data as skdata  # dev/build extra

    return _as_bgr(getattr(skdata, name)())


def _cover(image: ImageBGR, size: tuple[int, int]) -> ImageBGR:
    """`image` scaled to fill `size` (width, height), the overflow cropped from the centre."""
    w, h = size
    scale = max(w / image.shape[1], h / image.shape[0])
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    y0, x0 = (resized.shape[0] - h) // 2, (resized.shape[1] - w) // 2
    return np.ascontiguousarray(resized[y0 : y0 + h, x0 : x0 + w])


def _tiled(texture: ImageBGR, size: tuple[int, int]) -> ImageBGR:
    w, h = size
    reps = (-(-h // texture.shape[0]), -(-w // texture.shape[1]), 1)
    return np.ascontiguousarray(np.tile(texture, reps)[:h, :w])


def _poster_wall(rng: np.random.Generator, wall: ImageBGR, posters: list[ImageBGR]) -> ImageBGR:
    """Photos and printed pages hung on a wall, each 200-600 px high, not overlapping."""
    image = _tiled(wall, FRAME)
    x = int(rng.integers(20, 120))
    for poster in posters:
        height = int(rng.integers(200, 600))
        width = round(poster.shape[1] * height / poster.shape[0])
        if x + width > FRAME[0] - 20:
            break
        y = int(rng.integers(20, FRAME[1] - height - 20))
        image[y : y + height, x : x + width] = cv2.resize(
            poster, (width, height), interpolation=cv2.INTER_AREA
        )
        x += width + int(rng.integers(40, 160))
    return image


def no_face_scenes(small: bool = False) -> list[NoFaceScene]:
    """The 1920x1080 no-face scenes (or, `small`, the same at 640x480)."""
    photos = {name: _load(name) for name in PHOTOS + PRINTED + TEXTURES}
    scenes = [NoFaceScene(f"photo {n}", _cover(photos[n], FRAME)) for n in PHOTOS + PRINTED]
    scenes += [NoFaceScene(f"texture {n}", _tiled(photos[n], FRAME)) for n in TEXTURES]
    rng = np.random.default_rng(19)
    names = list(PHOTOS + PRINTED)
    for i, wall in enumerate(TEXTURES * 2):
        chosen = [photos[n] for n in rng.permutation(names)[:5]]
        scenes.append(
            NoFaceScene(f"posters {i + 1} on {wall}", _poster_wall(rng, photos[wall], chosen))
        )
    if small:
        return [
            NoFaceScene(s.name, cv2.resize(s.image, SMALL_FRAME, interpolation=cv2.INTER_AREA))
            for s in scenes
        ]
    return scenes
