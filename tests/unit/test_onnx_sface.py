"""DequantizeLinear as the SFace recipe folds it: per tensor, per axis and per block."""

from __future__ import annotations

import numpy as np

from edgeface.models.onnx_sface import dequantize


def test_blocked_dequantization_uses_one_scale_and_zero_point_per_block():
    q = np.arange(-6, 6, dtype=np.int8).reshape(2, 6)
    scale = np.array([[0.5, 2.0], [1.0, 4.0]], np.float32)  # blocks of 4 along axis 1
    zero = np.array([[1, 0], [0, -1]], np.int8)
    out = dequantize(q, scale, zero, axis=1, block_size=4)
    expected = np.array(
        [
            [(-6 - 1) * 0.5, (-5 - 1) * 0.5, (-4 - 1) * 0.5, (-3 - 1) * 0.5, -2 * 2.0, -1 * 2.0],
            [0.0, 1.0, 2.0, 3.0, (4 + 1) * 4.0, (5 + 1) * 4.0],
        ],
        np.float32,
    )
    assert np.array_equal(out, expected)


def test_per_axis_and_per_tensor_dequantization():
    q = np.array([[1, 2], [3, 4]], np.int8)
    per_axis = dequantize(q, np.array([1.0, 10.0], np.float32), None, axis=0)
    assert np.array_equal(per_axis, [[1.0, 2.0], [30.0, 40.0]])
    per_tensor = dequantize(q, np.array(0.5, np.float32), np.array(1, np.int8))
    assert np.array_equal(per_tensor, [[0.0, 0.5], [1.0, 1.5]])
