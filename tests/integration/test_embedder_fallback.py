"""32-bit ARM: a runtime that cannot load the dynamic-range embedder gets its float build.

The runtime is the real one, wrapped so that loading the default (dynamic-range) embedder fails
with the error tflite-runtime 2.14 gives on armv7l; every other model loads for real.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeface import runtime
from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config, ModelsConfig
from edgeface.errors import EdgefaceError
from edgeface.models import load_manifest, model_file
from edgeface.models.fallback import float_variants

MANIFEST = load_manifest()
DYNAMIC = MANIFEST.defaults["embedder"]
FLOAT = float_variants(MANIFEST, MANIFEST.get(DYNAMIC))[0].name
OLD_RUNTIME_ERROR = (
    "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An older version of this"
    " builtin might be supported. Are you using an old TFLite binary with a newer model?\n"
    "Registration failed.\n"
)


@pytest.fixture
def old_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    module, info = runtime._import_runtime()
    refused = str(model_file(load_manifest().get(DYNAMIC)).name)
    refused_dir = model_file(load_manifest().get(DYNAMIC)).parent.name

    class OldInterpreter(module.Interpreter):  # type: ignore[misc, name-defined]
        def __init__(self, model_path: str, **kwargs: Any) -> None:
            path = Path(model_path)
            if path.name == refused and path.parent.name == refused_dir:
                raise RuntimeError(OLD_RUNTIME_ERROR)
            super().__init__(model_path=model_path, **kwargs)

    fake = type("FakeRuntime", (), {"Interpreter": OldInterpreter})
    monkeypatch.setattr(runtime, "_import_runtime", lambda: (fake, info))


def built(*names: str) -> None:
    for name in names:
        if not model_file(load_manifest().get(name)).is_file():
            pytest.skip(f"{name} not built")


def test_the_float_build_of_the_same_weights_is_used_and_said_in_one_line(
    old_runtime: None, caplog: pytest.LogCaptureFixture, astronaut_bgr: np.ndarray
) -> None:
    built(DYNAMIC, FLOAT)
    with caplog.at_level(logging.WARNING):
        analyzer = FaceAnalyzer.from_config(Config())
    lines = [r.getMessage() for r in caplog.records if "cannot be loaded" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert lines[0].startswith(f"models.embedder {DYNAMIC} cannot be loaded by ")
    assert f"using {FLOAT}" in lines[0]
    assert analyzer.model_name.endswith(f"+{FLOAT}"), "cached gallery embeddings follow the model"
    assert analyzer.embedder.model.path == model_file(load_manifest().get(FLOAT))
    assert analyzer.analyze(astronaut_bgr), "the substitute runs"


def test_without_a_float_build_the_original_error_says_so(
    old_runtime: None, tmp_path: Path
) -> None:
    detector = MANIFEST.defaults["detector"]
    built(DYNAMIC, detector)
    cache = tmp_path / "cache"
    for name in (DYNAMIC, detector):
        source = model_file(load_manifest().get(name))
        target = model_file(load_manifest().get(name), cache)
        target.parent.mkdir(parents=True)
        target.write_bytes(source.read_bytes())
    cfg = dataclasses.replace(Config(), models=ModelsConfig(cache_dir=str(cache)))
    with pytest.raises(EdgefaceError) as exc:
        FaceAnalyzer.from_config(cfg)
    assert "cannot load it" in str(exc.value)
    assert f"its float build {FLOAT} is not built either" in str(exc.value)
