"""SFace built for the TFLite runtime: agrees with the ONNX file, and separates real faces."""

from __future__ import annotations

import numpy as np
import pytest

from edgeface.align import align_face
from edgeface.analyzer import FaceAnalyzer, embedder_alignment, open_embedder
from edgeface.config import Config, with_embedder
from edgeface.embed import l2_normalise
from edgeface.models import load_manifest, model_file


def _sface_analyzer(name: str = "sface-dynamic") -> FaceAnalyzer:
    spec = load_manifest().get(name)
    if not model_file(spec).is_file():
        pytest.skip(f"{name} not built (edgeface models build {name})")
    return FaceAnalyzer.from_config(with_embedder(Config(), name))


def test_sface_aligns_on_the_arcface_template_and_embeds_at_112():
    analyzer = _sface_analyzer()
    assert analyzer.align_settings.method == "five_point"
    assert analyzer.align_settings.size == analyzer.embedder.input_size == 112
    facenet = FaceAnalyzer.from_config(with_embedder(Config(), "facenet-msceleb-dynamic"))
    assert facenet.align_settings.method == "box"
    assert analyzer.embedding_version != facenet.embedding_version


def test_tflite_build_agrees_with_the_onnx_model_on_real_faces(astronaut_bgr, lfw_faces):
    pytest.importorskip("onnxruntime", reason="onnxruntime (build extra) not installed")
    from edgeface.models.build import locate_source
    from edgeface.models.onnx_sface import onnx_reference

    analyzer = _sface_analyzer()
    crops = []
    for image in [astronaut_bgr, *lfw_faces[:10]]:
        faces = analyzer.detect(image)
        if faces:
            crops.append(align_face(image, faces[0], analyzer.align_settings).crop_rgb)
    assert len(crops) >= 6
    spec = load_manifest().get("sface-dynamic")
    reference = l2_normalise(onnx_reference(locate_source(spec.source), crops))
    ours = np.stack([analyzer.embedder.embed(c) for c in crops])
    assert (ours * reference).sum(axis=1).min() > 0.99


def test_same_person_scores_above_every_other_face(astronaut_bgr, lfw_faces):
    analyzer = _sface_analyzer()
    reference = analyzer.analyze(astronaut_bgr)[0].embedding
    mirrored = analyzer.analyze(np.ascontiguousarray(astronaut_bgr[:, ::-1]))[0].embedding
    scaled = analyzer.analyze(astronaut_bgr[::2, ::2].copy())[0].embedding
    others = [float(f[0].embedding @ reference) for f in map(analyzer.analyze, lfw_faces[:40]) if f]
    assert len(others) >= 20
    same = min(float(mirrored @ reference), float(scaled @ reference))
    assert same > max(others) + 0.1


def test_open_embedder_normalises_as_the_manifest_says():
    spec = load_manifest().get("sface-dynamic")
    if not model_file(spec).is_file():
        pytest.skip("sface-dynamic not built (edgeface models build sface-dynamic)")
    embedder = open_embedder("sface-dynamic", None)
    crop = np.full((112, 112, 3), 200, np.uint8)
    assert np.array_equal(embedder.normalise(crop), crop.astype(np.float32))
    assert embedder_alignment(spec, 112, 0.2).method == "five_point"


def test_the_dynamic_build_runs_whole_in_xnnpack():
    """PRelu fused into one op and float depthwise weights: XNNPACK has no kernel for int8
    depthwise weights with float activations, and each such op split the graph (11 ms instead
    of 6 per face on one x86 thread)."""
    from ai_edge_litert.interpreter import Interpreter

    spec = load_manifest().get("sface-dynamic")
    if not model_file(spec).is_file():
        pytest.skip("sface-dynamic not built (edgeface models build sface-dynamic)")
    interpreter = Interpreter(model_path=str(model_file(spec)))
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    names = [op["op_name"] for op in ops]
    assert names.count("PRELU") == 27 and "NEG" not in names
    depthwise = [op for op in ops if op["op_name"] == "DEPTHWISE_CONV_2D"]
    assert depthwise and all(tensors[op["inputs"][1]]["dtype"] == np.float32 for op in depthwise)
    assert any(
        tensors[op["inputs"][1]]["dtype"] == np.int8 for op in ops if op["op_name"] == "CONV_2D"
    ), "the pointwise convolutions keep their int8 weights"
    assert names.count("DELEGATE") == 1
