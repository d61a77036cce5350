"""Which model may fill which role in a configuration, and where each one's file is.

Owns: the configuration keys that name a model and the role each needs (`models.detector` and
`detection.tile_detector`: a detector; `models.embedder`: an embedder), the check of a manifest
model's `kind` against that role, and, for a raw `.tflite` file (whose role no manifest records),
the check once it is loaded that its tensors have the shape the role's code reads. Every error
names the key. A new manifest model (any `kind`) needs no change here.
Never: loads a model itself (the caller hands over a loaded one) or opens anything but the
manifest and the model file's directory entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeface.config import ConfigError
from edgeface.errors import EdgefaceError
from edgeface.models import MODEL_SUFFIXES, ModelSpec, find_model, load_manifest

# Every config key that names a model, with the manifest `kind` it must have.
MODEL_ROLES = {
    "models.detector": "detector",
    "models.embedder": "embedder",
    "detection.tile_detector": "detector",
}
# What the detector code decodes (BlazeFace): box regressors (16 values per anchor) and scores.
_DETECTOR_OUTPUT_WIDTHS = {16, 1}


def is_model_file(name: str) -> bool:
    """A path to a model file (.tflite, or YuNet's .onnx) rather than a manifest name."""
    return name.endswith(MODEL_SUFFIXES)


def check_role(key: str, name: str) -> ModelSpec | None:
    """The manifest entry for `name` if its kind fits `key`; None for a .tflite file."""
    if is_model_file(name):
        return None
    role = MODEL_ROLES[key]
    try:
        manifest = load_manifest()
        spec = manifest.get(name)  # an unknown name is an error, built or not
    except EdgefaceError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    if spec.kind != role:
        fitting = ", ".join(sorted(n for n, m in manifest.models.items() if m.kind == role))
        raise ConfigError(
            f"{key}: {name} is {_a(spec.kind)}, not {_a(role)} (use one of: {fitting})"
        )
    return spec


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def locate(key: str, name: str, cache: Path | None) -> tuple[Path, ModelSpec | None]:
    """The built file of the model `key` names, refused unless it fits the key's role."""
    check_role(key, name)
    try:
        return find_model(name, cache)
    except EdgefaceError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def check_loaded(key: str, name: str, model: Any) -> None:
    """A raw .tflite file, once loaded: refuse it unless its outputs fit the key's role.

    A detector must give box regressors and scores (two outputs, 16 and 1 values per anchor);
    an embedder one flat vector. Manifest models were checked by their `kind` already.
    """
    if not is_model_file(name):
        return
    shapes = [tuple(int(d) for d in out["shape"]) for out in model.outputs]
    role = MODEL_ROLES[key]
    if role == "detector":
        fits = len(shapes) == 2 and {s[-1] for s in shapes} == _DETECTOR_OUTPUT_WIDTHS
        expected = "two outputs (16 and 1 values per anchor) like BlazeFace"
    else:
        fits = len(shapes) == 1 and len(shapes[0]) == 2
        expected = "one output vector like FaceNet"
    if not fits:
        raise ConfigError(
            f"{key}: {name} does not look like {_a(role)}: its outputs are {shapes}, expected"
            f" {expected}"
        )
