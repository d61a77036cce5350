"""Which detector runs a model: BlazeFace for a .tflite file, YuNet for an .onnx file.

Owns: building the `FaceDetector` a manifest entry or a model file calls for. Never: reads the
config (the analyzer passes settings in) or runs a model.
"""

from __future__ import annotations

from pathlib import Path

from edgeface.detect import BlazeFaceDetector, DetectorSettings, FaceDetector
from edgeface.models import ModelSpec
from edgeface.runtime import TFLiteModel
from edgeface.yunet import DEFAULT_MIN_SCORE as YUNET_MIN_SCORE
from edgeface.yunet import YuNetDetector

# BlazeFace's threshold: MediaPipe's own (0.5), at which the full-range model found no face in
# the no-face scenes of `edgeface.noface` (README "Detection").
BLAZEFACE_MIN_SCORE = 0.5


def load_detector(
    path: Path, spec: ModelSpec | None, settings: DetectorSettings, num_threads: int = 1
) -> FaceDetector:
    """The detector for `path` (a built manifest model, or a file the config names)."""
    if path.suffix == ".onnx":
        return YuNetDetector(path, settings)
    anchors = spec.anchors if spec and spec.anchors else guess_anchors(path)
    return BlazeFaceDetector(TFLiteModel(path, num_threads), anchors, settings)


def default_min_score(path: Path) -> float:
    """The score a face must reach with this detector unless the config sets one."""
    return YUNET_MIN_SCORE if path.suffix == ".onnx" else BLAZEFACE_MIN_SCORE


def guess_anchors(path: Path) -> str:
    """A BlazeFace file outside the manifest: short-range if its name says so."""
    return "short" if "short" in path.name else "full"
