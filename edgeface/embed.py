"""Face embeddings from aligned face crops.

Owns: the per-model input normalisation the manifest names (FaceNet's per-image prewhitening;
none for SFace, whose graph scales 0-255 RGB itself), feeding the (possibly quantized) TFLite
model, and L2-normalising the output so matching can use a plain dot product.
Never: detection, cropping or any knowledge of the gallery.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from edgeface.detect import InferenceModel
from edgeface.errors import EdgefaceError
from edgeface.types import Embedding, ImageBGR


def prewhiten(crop_rgb: ImageBGR) -> npt.NDArray[np.float32]:
    """FaceNet's normalisation: zero mean, unit variance per image (std floored)."""
    x = crop_rgb.astype(np.float32)
    mean = x.mean()
    std = max(float(x.std()), 1.0 / np.sqrt(x.size))
    x -= mean
    x /= std
    return x


def as_float(crop_rgb: ImageBGR) -> npt.NDArray[np.float32]:
    """No normalisation: 0-255 RGB as floats, for models that scale their input themselves."""
    return crop_rgb.astype(np.float32)


# The manifest's `normalisation` of an embedder: how a uint8 RGB crop becomes the model input.
NORMALISATIONS: dict[str, Callable[[ImageBGR], npt.NDArray[np.float32]]] = {
    "prewhiten": prewhiten,
    "none": as_float,
}


def at_input_size(crop_rgb: ImageBGR, size: int) -> ImageBGR:
    """An aligned crop resized to another embedder's input: for checks and timings that need the
    same pixels in every model (agreement, golden outputs, cost), never for recognition, where
    each model gets the crop geometry it was trained on."""
    if crop_rgb.shape[:2] == (size, size):
        return crop_rgb
    return cv2.resize(crop_rgb, (size, size), interpolation=cv2.INTER_AREA)


def l2_normalise(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder:
    """Turns aligned RGB crops into unit-length embeddings (128-d or 512-d, by model)."""

    def __init__(self, model: InferenceModel, normalisation: str = "prewhiten") -> None:
        if normalisation not in NORMALISATIONS:
            raise EdgefaceError(
                f"embedder normalisation {normalisation!r}: expected one of"
                f" {', '.join(NORMALISATIONS)}"
            )
        self.model = model
        self.normalise = NORMALISATIONS[normalisation]
        self.input_size = int(model.input_shape[1])
        self.size = int(np.prod(model.output_shape[1:]))
        self.calls = 0  # model invocations, so tests can assert a cache hit computes nothing

    def embed(self, crop_rgb: ImageBGR) -> Embedding:
        if crop_rgb.shape[:2] != (self.input_size, self.input_size):
            raise ValueError(
                f"crop is {crop_rgb.shape[:2]}, embedder expects {self.input_size}x{self.input_size}"
            )
        self.calls += 1
        output = self.model.run(self.normalise(crop_rgb)[np.newaxis])[0]
        return l2_normalise(output.reshape(-1).astype(np.float32))
