"""Which detector runs a model: BlazeFace for a .tflite file, YuNet for an .onnx file.

Owns: building the `FaceDetector` a manifest entry or a model file calls for. Never: reads the
config (the analyzer passes settings in) or runs a model.
"""

from __future__ import annotations

from pathlib import Path

from edgeface.config import ConfigError
from edgeface.detect import ANCHOR_SPECS, BlazeFaceDetector, DetectorSettings, FaceDetector
from edgeface.models import ModelSpec
from edgeface.roles import check_loaded
from edgeface.runtime import TFLiteModel
from edgeface.yunet import DEFAULT_MIN_SCORE as YUNET_MIN_SCORE
from edgeface.yunet import YuNetDetector

# BlazeFace's threshold: MediaPipe's own (0.5), at which the full-range model found no face in
# the no-face scenes of `edgeface.noface` (README "Detection").
BLAZEFACE_MIN_SCORE = 0.5


def load_detector(
    path: Path,
    spec: ModelSpec | None,
    settings: DetectorSettings,
    num_threads: int = 1,
    key: str = "models.detector",
) -> FaceDetector:
    """The detector for `path` (a built manifest model, or a file config `key` names).

    A raw .tflite file must have BlazeFace's tensors; its anchors follow from its input size
    (128: short range, 192: full range).
    """
    if path.suffix == ".onnx":
        return YuNetDetector(path, settings)
    model = TFLiteModel(path, num_threads)
    if spec is None:
        check_loaded(key, str(path), model)
    short = model.input_shape[1] == ANCHOR_SPECS["short"].input_size
    anchors = spec.anchors if spec and spec.anchors else ("short" if short else "full")
    try:
        return BlazeFaceDetector(model, anchors, settings)
    except ValueError as exc:
        raise ConfigError(f"{key}: {path}: {exc}") from None


def default_min_score(path: Path) -> float:
    """The score a face must reach with this detector unless the config sets one."""
    return YUNET_MIN_SCORE if path.suffix == ".onnx" else BLAZEFACE_MIN_SCORE
