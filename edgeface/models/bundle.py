"""Model bundles: built models shipped to devices that have no TensorFlow.

Owns: `edgeface models export` (a tar of built models, the manifest they were built from,
SHA256SUMS, the build host, and a golden output per model on a face crop shipped inside) and
`edgeface models import` (checksums, the local recipe hashes, each golden output recomputed with
the local runtime, then installed into the model cache with 0700/0600 permissions).
Export needs scikit-image (the `[build]` extra) for the golden face; import needs only the
runtime. Checksums catch corruption and edited members; pin the whole bundle's sha256 on import
(`--sha256`) where the bundle's origin must be proven too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import platform
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeface import __version__
from edgeface.align import align_face
from edgeface.detect import DetectorSettings, FaceDetector
from edgeface.detectors import load_detector
from edgeface.embed import Embedder, at_input_size
from edgeface.errors import EdgefaceError
from edgeface.files import require_regular_file
from edgeface.models import (
    Manifest,
    ModelSpec,
    default_cache_dir,
    load_manifest,
    manifest_path,
    model_dir,
    model_file,
    sha256_file,
)
from edgeface.models.fallback import float_variants
from edgeface.runtime import TFLiteModel, runtime_info
from edgeface.types import Box, ImageBGR

BUNDLE_FORMAT = 1
SUMS = "SHA256SUMS"
INFO = "bundle.json"
SCENE = "golden-scene.png"  # a frame with one face (BGR), for detectors
CROP = "golden-face.png"  # that face aligned for the embedder (stored as RGB)
# Lowest cosine between the golden embedding from the build host and the device's, by
# quantization: float kernels differ between x86 and ARM in the last bits only; a dynamic-range
# model re-quantizes activations at run time, where rounding can flip (0.998 seen x86 vs A76).
GOLDEN_COSINE = {"none": 0.999, "float16": 0.999, "dynamic": 0.99, "int8": 0.98}
# Detectors: the golden face's box must be found again this closely.
GOLDEN_BOX_IOU = 0.9
IMPORT_RECORD = "bundle.json"  # written into the cache: which bundle is installed
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ImportedModel:
    name: str
    check: str  # what the golden comparison measured, e.g. "cosine 0.99991 >= 0.999"


def build_host() -> dict[str, Any]:
    """What the models were built on: converted FaceNet bytes depend on the CPU family."""
    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and cpu == platform.machine():
                cpu = value.strip()
            if key in ("flags", "Features") and not flags:
                flags = value.strip()
    except OSError:
        pass
    try:
        tensorflow = metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        try:
            tensorflow = metadata.version("tensorflow-cpu")
        except metadata.PackageNotFoundError:
            tensorflow = None
    runtime = runtime_info()
    return {
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_flags": flags,
        "python": platform.python_version(),
        "tensorflow": tensorflow,
        "runtime": f"{runtime.module} {runtime.version}",
        "edgeface": __version__,
    }


def _golden_inputs(manifest: Manifest, cache_dir: Path | None) -> tuple[ImageBGR, ImageBGR]:
    """scikit-image's astronaut and her face aligned by the default detector."""
    try:
        from skimage import data as skdata  # build extra only
    except ImportError:
        raise EdgefaceError(
            "models export: needs scikit-image for the golden face (pip install 'edgeface[build]')"
        ) from None
    scene = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    detector = _detector(manifest.get(manifest.defaults["detector"]), cache_dir)
    faces = detector.detect(scene)
    if not faces:
        raise EdgefaceError("models export: the default detector finds no face in the golden scene")
    return scene, align_face(scene, faces[0]).crop_rgb


def _detector(spec: ModelSpec, cache_dir: Path | None) -> FaceDetector:
    return load_detector(model_file(spec, cache_dir), spec, DetectorSettings())


def _golden(spec: ModelSpec, cache_dir: Path, scene: ImageBGR, crop: ImageBGR) -> list[float]:
    """An embedder's embedding of the crop, or a detector's best box in the scene."""
    if spec.kind == "embedder":
        embedder = Embedder(TFLiteModel(model_file(spec, cache_dir)), spec.normalisation)
        return [float(v) for v in embedder.embed(at_input_size(crop, embedder.input_size))]
    faces = _detector(spec, cache_dir).detect(scene)
    if not faces:
        return []
    box = faces[0].box
    return [box.x, box.y, box.w, box.h]


def _compare(spec: ModelSpec, expected: list[float], actual: list[float]) -> tuple[bool, str]:
    if spec.kind == "embedder":
        a, b = np.asarray(expected, np.float32), np.asarray(actual, np.float32)
        if a.shape != b.shape:
            return False, f"embedding has {b.size} values, the bundle's has {a.size}"
        cosine = float(a @ b)
        bound = GOLDEN_COSINE.get(spec.quantization, 0.99)
        return cosine >= bound, f"cosine {cosine:.5f} (needs >= {bound})"
    if not expected or not actual:
        return expected == actual, f"face found: {bool(actual)} (bundle: {bool(expected)})"
    iou = Box(*expected).iou(Box(*actual))
    return iou >= GOLDEN_BOX_IOU, f"box IoU {iou:.3f} (needs >= {GOLDEN_BOX_IOU})"


def _png(image: ImageBGR) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return bytes(data.tobytes())


def default_export_models(manifest: Manifest) -> list[str]:
    """Every model the default configuration names (detectors, tile detector, embedder), plus
    the float build of each quantized one (what a runtime that cannot load it falls back to)."""
    from edgeface.config import Config

    names = list(dict.fromkeys(_model_names(Config(), manifest)))
    for name in list(names):
        names += [s.name for s in float_variants(manifest, manifest.get(name))]
    return list(dict.fromkeys(names))


def _model_names(value: Any, manifest: Manifest) -> list[str]:
    if dataclasses.is_dataclass(value):
        return [
            name
            for f in dataclasses.fields(value)
            for name in _model_names(getattr(value, f.name), manifest)
        ]
    return [value] if isinstance(value, str) and value in manifest.models else []


def export_bundle(out: Path, names: list[str] | None = None, cache_dir: Path | None = None) -> str:
    """Write the bundle; returns its sha256 (print it, pin it with `import --sha256`)."""
    cache = cache_dir or default_cache_dir()
    if out.is_dir():
        raise EdgefaceError(f"models export: {out} is a folder; give the bundle's file name")
    manifest = load_manifest()
    specs = [manifest.get(n) for n in (names or default_export_models(manifest))]
    for spec in specs:
        if not model_file(spec, cache).is_file():
            raise EdgefaceError(
                f"models export: {spec.name} is not built in {cache} (run `edgeface models build`)"
            )
    scene, crop = _golden_inputs(manifest, cache)
    members: dict[str, bytes | Path] = {
        "manifest.yaml": manifest_path(),
        SCENE: _png(scene),
        CROP: _png(crop),
    }
    models: dict[str, Any] = {}
    for spec in specs:
        directory = model_dir(spec, cache)
        for path in sorted(p for p in directory.iterdir() if p.is_file()):
            members[f"models/{directory.name}/{path.name}"] = path
        models[spec.name] = {
            "dir": directory.name,
            "kind": spec.kind,
            "quantization": spec.quantization,
            "golden": _golden(spec, cache, scene, crop),
        }
    info = {
        "format": BUNDLE_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_host": build_host(),
        "models": models,
    }
    members[INFO] = json.dumps(info, indent=1).encode()
    sums = "".join(f"{_digest(data)}  {name}\n" for name, data in sorted(members.items()))
    partial = out.with_name(out.name + ".partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(partial, "w") as tar:
            _add(tar, SUMS, sums.encode())
            for name, data in sorted(members.items()):
                _add(tar, name, data)
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)  # never leave a half bundle (100+ MB) behind
        raise EdgefaceError(
            f"models export: {out} cannot be written ({exc.strerror or exc})"
        ) from None
    return sha256_file(out)


def _digest(data: bytes | Path) -> str:
    return sha256_file(data) if isinstance(data, Path) else hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes | Path) -> None:
    raw = data.read_bytes() if isinstance(data, Path) else data
    entry = tarfile.TarInfo(name)
    entry.size, entry.mode, entry.mtime = len(raw), 0o600, 0
    tar.addfile(entry, io.BytesIO(raw))


def _unpack(bundle: Path, into: Path) -> None:
    """Regular files with plain relative names only, each checked against SHA256SUMS."""
    try:
        with tarfile.open(bundle, "r:*") as tar:
            entries = tar.getmembers()
            for entry in entries:
                parts = Path(entry.name).parts
                if not entry.isfile() or entry.name.startswith("/") or ".." in parts:
                    raise EdgefaceError(f"bundle {bundle}: unexpected member {entry.name!r}")
                source = tar.extractfile(entry)
                assert source is not None
                target = into / entry.name
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                with source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
    except tarfile.TarError:
        # tarfile's own message lists every compression it tried, one line each.
        raise EdgefaceError(
            f"bundle {bundle}: not a tar archive (expected a file `edgeface models export` wrote)"
        ) from None
    except OSError as exc:
        raise EdgefaceError(f"bundle {bundle}: cannot be read ({exc.strerror or exc})") from None
    sums_file = into / SUMS
    if not sums_file.is_file():
        raise EdgefaceError(f"bundle {bundle}: no {SUMS} (not an edgeface model bundle)")
    listed: dict[str, str] = {}
    for line in sums_file.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    present = {str(p.relative_to(into)) for p in into.rglob("*") if p.is_file()} - {SUMS}
    for name in sorted(present | set(listed)):
        if name not in listed:
            raise EdgefaceError(f"bundle {bundle}: {name} is not listed in {SUMS} (tampered?)")
        if name not in present:
            raise EdgefaceError(f"bundle {bundle}: {name} is listed in {SUMS} but missing")
        if sha256_file(into / name) != listed[name]:
            raise EdgefaceError(f"bundle {bundle}: {name} does not match its checksum (tampered?)")


def import_bundle(
    bundle: Path, cache_dir: Path | None = None, expect_sha256: str | None = None
) -> list[ImportedModel]:
    """Verify the bundle completely, then install its models; nothing is installed on refusal."""
    cache = cache_dir or default_cache_dir()
    if expect_sha256 is not None and not _SHA256_HEX.fullmatch(expect_sha256):
        raise EdgefaceError(
            f"--sha256 {expect_sha256!r}: expected 64 hexadecimal digits"
            " (as `edgeface models export` printed it)"
        )
    size = require_regular_file(bundle, "a bundle file").st_size
    if size == 0:
        raise EdgefaceError(f"bundle {bundle}: the file is empty (copied before it was complete?)")
    if expect_sha256 is not None:
        digest = sha256_file(bundle)
        if digest != expect_sha256.lower():
            raise EdgefaceError(
                f"bundle {bundle}: sha256 is {digest}, not the expected {expect_sha256.lower()}"
            )
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(cache, 0o700)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".import-") as tmp:
        staging = Path(tmp)
        _unpack(bundle, staging)
        try:
            info = json.loads((staging / INFO).read_text())
            models: dict[str, Any] = info["models"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EdgefaceError(f"bundle {bundle}: {INFO} unreadable ({exc})") from None
        if info.get("format") != BUNDLE_FORMAT:
            raise EdgefaceError(f"bundle {bundle}: format {info.get('format')}, expected 1")
        manifest = load_manifest()
        scene = cv2.imread(str(staging / SCENE), cv2.IMREAD_COLOR)
        crop = cv2.imread(str(staging / CROP), cv2.IMREAD_COLOR)
        if scene is None or crop is None:
            raise EdgefaceError(f"bundle {bundle}: its golden images cannot be decoded")
        results = []
        for name, entry in models.items():
            spec = manifest.get(name)
            expected_dir = model_dir(spec, cache).name
            if entry["dir"] != expected_dir:
                raise EdgefaceError(
                    f"bundle {bundle}: {name} was built by another edgeface recipe"
                    f" ({entry['dir']}, this version expects {expected_dir}); export it again"
                )
            if not model_file(spec, staging / "models").is_file():
                raise EdgefaceError(
                    f"bundle {bundle}: {name} is listed in {INFO} but its model file is not in"
                    " the bundle; export it again on the build host"
                )
            try:
                actual = _golden(spec, staging / "models", scene, crop)
            except EdgefaceError as exc:
                raise EdgefaceError(f"bundle {bundle}: {name}: {exc}") from None
            ok, check = _compare(spec, entry["golden"], actual)
            if not ok:
                raise EdgefaceError(
                    f"bundle {bundle}: {name} does not reproduce its golden output here: {check}"
                )
            results.append(ImportedModel(name, check))
        for entry in models.values():
            target = cache / entry["dir"]
            if target.exists():
                shutil.rmtree(target)
            (staging / "models" / entry["dir"]).replace(target)
            os.chmod(target, 0o700)
            for path in target.iterdir():
                os.chmod(path, 0o600)
        record = {"bundle": str(bundle), "sha256": sha256_file(bundle), **info}
        record.pop("models")
        record["models"] = {r.name: r.check for r in results}
        (cache / IMPORT_RECORD).write_text(json.dumps(record, indent=1))
        os.chmod(cache / IMPORT_RECORD, 0o600)
    return results
