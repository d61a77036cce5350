"""An embedder the local runtime can load: the configured build, else the float build of it.

Owns: the one substitution the daemon makes on its own. tflite-runtime 2.14 (the runtime with
wheels for 32-bit Raspberry Pi OS) cannot load a dynamic-range FaceNet (its FULLY_CONNECTED
kernel is version 12, newer than that runtime); the float build of the same weights loads there,
gives the same decisions at the same operating point, and costs about 4x the file size and RAM.
The switch is said in one log line. Never: falls back between different weights.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgeface.errors import EdgefaceError
from edgeface.models import Manifest, ModelSpec, load_manifest, model_file
from edgeface.runtime import TFLiteModel

log = logging.getLogger(__name__)


def float_variants(manifest: Manifest, spec: ModelSpec) -> list[ModelSpec]:
    """Float builds of the same weights as a quantized model (empty for a float model)."""
    if spec.quantization in ("none", "float16"):
        return []
    return [
        other
        for other in manifest.models.values()
        if other.source == spec.source
        and other.recipe == spec.recipe
        and other.quantization == "none"
        and other.kind == spec.kind
    ]


def load_float_instead(
    failure: EdgefaceError, spec: ModelSpec | None, cache_dir: Path | None, num_threads: int
) -> tuple[TFLiteModel, str]:
    """After `failure` to load `spec`: its built float variant and that model's name.

    Re-raises `failure` when there is none (a model file outside the manifest, a float model,
    or a float variant that is not built: then the error names both).
    """
    variants = float_variants(load_manifest(), spec) if spec is not None else []
    if spec is None or not variants:
        raise failure
    fallback = variants[0]
    path = model_file(fallback, cache_dir)
    if not path.is_file():
        raise EdgefaceError(
            f"{failure}; its float build {fallback.name} is not built either (expected {path})"
        ) from failure
    model = TFLiteModel(path, num_threads)
    log.warning(
        "models.embedder %s cannot be loaded by %s %s; using %s (the float build of the same"
        " weights) instead",
        spec.name,
        model.runtime.module,
        model.runtime.version,
        fallback.name,
    )
    return model, fallback.name
