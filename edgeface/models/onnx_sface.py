"""OpenCV Zoo's SFace (an ONNX graph with block-quantized int8 weights) as a TensorFlow function.

Owns: reading the ONNX file, folding its DequantizeLinear nodes (int8 blocks with a scale and
zero point each) and the constant Reshape nodes after them into float weights, folding every
BatchNormalization that follows a Conv or Gemm into that layer, and replaying the remaining
float graph (Conv, depthwise Conv, PRelu, Flatten, Gemm, the input's Sub/Mul) in NHWC as a
TensorFlow function: the input to TFLiteConverter. Also the ONNX float reference for `models
verify`, run by onnxruntime on the untouched file.
Needs the `[build]` extra (onnx, onnxruntime, TensorFlow); never imported by the daemon.

Why a replay instead of a converter package: onnx2tf/onnx-tf pull an older TensorFlow and more;
the graph is 89 float nodes of seven kinds, each replayed here and refused if it is any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgeface.errors import EdgefaceError

Array = npt.NDArray[np.float32]


@dataclass
class _Graph:
    """The float graph after folding: nodes in order, constants by tensor name."""

    input_name: str
    output_name: str
    nodes: list[Any]
    constants: dict[str, Array] = field(default_factory=dict)


def _attributes(node: Any) -> dict[str, Any]:
    import onnx  # build extra only

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def dequantize(
    quantized: npt.NDArray[np.generic],
    scale: Array,
    zero_point: npt.NDArray[np.generic] | None,
    axis: int = 1,
    block_size: int = 0,
) -> Array:
    """ONNX DequantizeLinear: (q - zero_point) * scale, per tensor, per axis or per block.

    With `block_size`, `scale` and `zero_point` hold one value per `block_size` consecutive
    elements along `axis` (opset 21 blocked quantization).
    """
    q = quantized.astype(np.float32)
    z = np.zeros_like(scale) if zero_point is None else zero_point.astype(np.float32)
    s = scale.astype(np.float32)
    axis = axis % q.ndim if q.ndim else 0
    if block_size:
        length = q.shape[axis]
        s = np.repeat(s, block_size, axis=axis).take(range(length), axis=axis)
        z = np.repeat(z, block_size, axis=axis).take(range(length), axis=axis)
    elif s.ndim == 1 and s.size > 1:  # per-axis
        shape = [1] * q.ndim
        shape[axis] = s.size
        s, z = s.reshape(shape), z.reshape(shape)
    return ((q - z) * s).astype(np.float32)


def fold_graph(path: Path) -> _Graph:
    """The ONNX graph with weights as float constants and batch norms folded into layers."""
    import onnx  # build extra only
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    constants: dict[str, Array] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    float_nodes = []
    for node in graph.node:
        a = _attributes(node)
        if node.op_type == "DequantizeLinear":
            zero = constants[node.input[2]] if len(node.input) > 2 else None
            constants[node.output[0]] = dequantize(
                constants[node.input[0]],
                constants[node.input[1]],
                zero,
                int(a.get("axis", 1)),
                int(a.get("block_size", 0)),
            )
        elif node.op_type == "Reshape" and all(i in constants for i in node.input):
            constants[node.output[0]] = constants[node.input[0]].reshape(
                [int(d) for d in constants[node.input[1]]]
            )
        elif node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(a["value"])
        else:
            float_nodes.append(node)
    used = {name for node in float_nodes for name in node.input}
    # The file declares 29 weight inputs that nothing reads (opencv 5 refuses it for them).
    inputs = [i.name for i in graph.input if i.name not in constants and i.name in used]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise EdgefaceError(f"{path.name}: expected one image input and one output, got {inputs}")
    folded = _Graph(inputs[0], graph.output[0].name, [], constants)
    folded.nodes = _fold_batch_norms(float_nodes, constants)
    return folded


def _fold_batch_norms(nodes: list[Any], constants: dict[str, Array]) -> list[Any]:
    """Conv/Gemm followed by BatchNormalization become one layer with scaled weights and a bias.

    The folded weights and bias are stored under the layer's output name (`<out>.w`, `<out>.b`),
    and the batch norm node is dropped; a batch norm after anything else is kept.
    """
    producers = {n.output[0]: n for n in nodes}
    consumers: dict[str, int] = {}
    for n in nodes:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    kept = []
    for node in nodes:
        if node.op_type == "BatchNormalization":
            layer = producers.get(node.input[0])
            if (
                layer is not None
                and layer.op_type in ("Conv", "Gemm")
                and consumers.get(node.input[0]) == 1
            ):
                gamma, beta, mean, var = (constants[i] for i in node.input[1:5])
                epsilon = float(_attributes(node).get("epsilon", 1e-5))
                scale = gamma / np.sqrt(var + epsilon)
                weights, bias = _layer_weights(layer, constants)
                out = node.output[0]
                constants[f"{out}.w"] = (weights * scale[:, None]).astype(np.float32)
                constants[f"{out}.b"] = ((bias - mean) * scale + beta).astype(np.float32)
                layer.output[0] = out  # the layer now produces the batch norm's output
                continue
        kept.append(node)
    return kept


def _layer_weights(layer: Any, constants: dict[str, Array]) -> tuple[Array, Array]:
    """A Conv's or Gemm's weights as (out, rest) and its bias (zeros when it has none)."""
    key = f"{layer.output[0]}.w"
    if key in constants:  # already folded
        return constants[key], constants[f"{layer.output[0]}.b"]
    weights = constants[layer.input[1]]
    if layer.op_type == "Gemm" and not _attributes(layer).get("transB", 0):
        weights = weights.T
    out_channels = weights.shape[0]
    bias = (
        constants[layer.input[2]]
        if len(layer.input) > 2 and layer.input[2]
        else np.zeros(out_channels, np.float32)
    )
    return weights.reshape(out_channels, -1), bias


def sface_function(path: Path) -> Callable[[Any], Any]:
    """SFace as a TensorFlow function: 112x112 RGB (0-255, NHWC) -> 128-d (not L2-normalised)."""
    import tensorflow as tf  # build extra only

    graph = fold_graph(path)
    constants = graph.constants

    def weights_of(node: Any) -> tuple[Array, Array | None]:
        """Weights in ONNX layout and bias; folded ones under the node's output name."""
        out = node.output[0]
        if f"{out}.w" in constants:
            return constants[f"{out}.w"], constants[f"{out}.b"]
        bias = constants[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        return constants[node.input[1]], bias

    def conv(x: Any, node: Any) -> Any:
        a = _attributes(node)
        weights, bias = weights_of(node)
        kh, kw = (int(k) for k in a["kernel_shape"])
        group = int(a.get("group", 1))
        out_channels = weights.shape[0]
        weights = weights.reshape(out_channels, -1, kh, kw)  # OIHW
        strides = [1, *(int(s) for s in a.get("strides", [1, 1])), 1]
        top, left, bottom, right = (int(p) for p in a.get("pads", [0, 0, 0, 0]))
        if any(int(d) != 1 for d in a.get("dilations", [1, 1])):
            raise EdgefaceError(f"{path.name}: dilated Conv {node.name} not supported")
        if top or left or bottom or right:
            x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
        channels = int(x.shape[-1])
        if group == 1:
            y = tf.nn.conv2d(x, np.transpose(weights, (2, 3, 1, 0)), strides, "VALID")
        elif group == channels == out_channels:
            kernel = np.transpose(weights, (2, 3, 0, 1))  # H, W, C, 1
            y = tf.nn.depthwise_conv2d(x, kernel, strides, "VALID")
        else:
            raise EdgefaceError(f"{path.name}: grouped Conv {node.name} (group {group})")
        return y + bias if bias is not None else y

    def prelu(x: Any, slope: Array) -> Any:
        # relu(x) + relu(-x) * -a with a shaped (1, 1, C): the only spelling TFLite's converter
        # fuses into one PRELU op (others stay four ops per activation, 27 times, 30 % slower).
        negative_alpha = -slope.reshape(1, 1, -1).astype(np.float32)
        return tf.nn.relu(x) + tf.nn.relu(-x) * negative_alpha

    def replay(x: Any) -> Any:
        values: dict[str, Any] = {graph.input_name: x}

        def get(name: str) -> Any:
            return values[name] if name in values else _nhwc_constant(constants[name])

        for node in graph.nodes:
            op, ins = node.op_type, list(node.input)
            if op == "Conv":
                y = conv(values[ins[0]], node)
            elif op == "PRelu":
                y = prelu(values[ins[0]], constants[ins[1]])
            elif op == "BatchNormalization":
                gamma, beta, mean, var = (constants[i].reshape(-1) for i in ins[1:5])
                epsilon = float(_attributes(node).get("epsilon", 1e-5))
                scale = gamma / np.sqrt(var + epsilon)
                y = values[ins[0]] * scale + (beta - mean * scale)
            elif op == "Sub":
                y = get(ins[0]) - get(ins[1])
            elif op == "Mul":
                y = get(ins[0]) * get(ins[1])
            elif op == "Dropout":
                y = values[ins[0]]  # inference
            elif op == "Flatten":
                # ONNX flattens NCHW; transposing back keeps the Gemm weights as they are.
                y = tf.reshape(tf.transpose(values[ins[0]], [0, 3, 1, 2]), [1, -1])
            elif op == "Gemm":
                weights, bias = weights_of(node)
                if f"{node.output[0]}.w" not in constants and not _attributes(node).get("transB"):
                    weights = weights.T
                y = tf.matmul(values[ins[0]], weights.T)
                y = y + bias if bias is not None else y
            else:
                raise EdgefaceError(f"{path.name}: ONNX op {op} ({node.name}) not supported")
            values[node.output[0]] = y
        return values[graph.output_name]

    return replay


def _nhwc_constant(value: Array) -> Array:
    """A constant broadcast against NCHW tensors, laid out for NHWC (scalars unchanged)."""
    if value.ndim == 3:  # C, 1, 1
        return np.transpose(value, (1, 2, 0))
    return value


def onnx_reference(path: Path, crops_rgb: list[npt.NDArray[np.uint8]]) -> Array:
    """The ONNX model's raw embeddings for RGB crops, run by onnxruntime (the float reference)."""
    import onnx  # build extra only
    import onnxruntime

    model = onnx.load(str(path))
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    initialized = {i.name for i in graph.initializer}
    for dangling in [i for i in graph.input if i.name not in used or i.name in initialized]:
        graph.input.remove(dangling)  # unread weight inputs, and weights declared as inputs
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    out = [
        session.run(None, {name: np.transpose(c.astype(np.float32), (2, 0, 1))[np.newaxis]})[0][0]
        for c in crops_rgb
    ]
    return np.asarray(out, dtype=np.float32)
