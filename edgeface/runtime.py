"""TFLite interpreter factory.

Owns: choosing the runtime (ai-edge-litert first, tflite-runtime as fallback), thread count,
optional delegates, and turning runtime load failures into one-line errors.
Never: model-specific pre/post-processing (that is detect.py / embed.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgeface.errors import EdgefaceError

_RUNTIME_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


@dataclass(frozen=True)
class RuntimeInfo:
    module: str
    version: str


def _import_runtime() -> tuple[Any, RuntimeInfo]:
    for name in _RUNTIME_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        top = importlib.import_module(name.split(".")[0])
        version = getattr(top, "__version__", "unknown")
        return module, RuntimeInfo(module=name.split(".")[0], version=str(version))
    raise EdgefaceError(
        "no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime on 32-bit ARM)"
    )


def runtime_info() -> RuntimeInfo:
    return _import_runtime()[1]


# Printed by the native runtime on fd 2 for every interpreter; it is not ours to print, and it
# broke the promise of one-line errors (every CLI error came after it).
_NATIVE_INFO_LINE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_FD2_SWAP = threading.Lock()


@contextlib.contextmanager
def _native_info_line_dropped() -> Iterator[None]:
    """Hold back what is written to fd 2 meanwhile and pass it on without the XNNPACK line.

    The runtime logs through C stdio with no switch to lower its level (TF_CPP_MIN_LOG_LEVEL
    does not reach it), so the descriptor is swapped for a temporary file; everything else,
    including other threads' log lines and the runtime's own errors, is written out after.
    One swap at a time: two overlapping ones would restore each other's temporary file.
    """
    with _FD2_SWAP, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [
                line
                for line in held.read().splitlines(keepends=True)
                if line.rstrip() != _NATIVE_INFO_LINE
            ]
            rest = b"".join(kept)
            while rest:
                rest = rest[os.write(2, rest) :]


class TFLiteModel:
    """One loaded TFLite model with a single input; call `run` with a float or int batch."""

    def __init__(self, path: Path, num_threads: int = 1, delegate: str | None = None) -> None:
        module, self.runtime = _import_runtime()
        if not path.is_file():
            raise EdgefaceError(f"model file {path}: not found (run `edgeface models build`)")
        delegates = []
        if delegate:
            try:
                # Opened with ctypes first: a failed load_delegate leaves an object whose
                # destructor prints a traceback, so a missing library never gets that far.
                ctypes.CDLL(delegate)
                delegates.append(module.load_delegate(delegate))
            except (ValueError, OSError) as exc:
                raise EdgefaceError(
                    f"runtime.delegate {delegate!r}: could not be loaded ({exc})"
                ) from exc
        try:
            with _native_info_line_dropped():
                self._interpreter = module.Interpreter(
                    model_path=str(path),
                    num_threads=num_threads,
                    experimental_delegates=delegates or None,
                )
                self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise EdgefaceError(
                f"model file {path}: {self.runtime.module} {self.runtime.version} cannot load it"
                f" ({first_line}); install ai-edge-litert >= 1.2"
            ) from exc
        self.path = path
        self.input = self._interpreter.get_input_details()[0]
        self.outputs = self._interpreter.get_output_details()
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in self.input["shape"])
        self.output_shape: tuple[int, ...] = tuple(int(v) for v in self.outputs[0]["shape"])
        self.input_dtype = np.dtype(self.input["dtype"])
        scale, zero = self.input.get("quantization", (0.0, 0))
        self.input_quantization: tuple[float, int] = (float(scale), int(zero))

    def quantize_input(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        """Convert a float batch to the model's input type (identity for float models)."""
        if self.input_dtype == np.float32:
            return batch.astype(np.float32, copy=False)
        scale, zero = self.input_quantization
        info = np.iinfo(self.input_dtype)
        q = np.round(batch / scale + zero)
        return np.clip(q, info.min, info.max).astype(self.input_dtype)

    def multiply_accumulates(self) -> int:
        """Multiply-accumulates of one inference in its convolutions and fully connected layers:
        a cost no CPU changes (from the op listing the TFLite analyzer uses too)."""
        tensors = {t["index"]: t["shape"] for t in self._interpreter.get_tensor_details()}
        total = 0
        for op in self._interpreter._get_ops_details():
            name = op["op_name"]
            if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                continue
            out, weights = tensors[op["outputs"][0]], tensors[op["inputs"][1]]
            if name == "CONV_2D":
                per_output = int(np.prod(weights[1:]))
            elif name == "DEPTHWISE_CONV_2D":
                per_output = int(weights[1] * weights[2])
            else:
                per_output = int(weights[1])
            total += int(np.prod(out)) * per_output
        return total

    def run(self, batch: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """Run one inference; returns every output, dequantized to float32."""
        self._interpreter.set_tensor(self.input["index"], self.quantize_input(batch))
        self._interpreter.invoke()
        results = []
        for detail in self.outputs:
            out = self._interpreter.get_tensor(detail["index"])
            if out.dtype != np.float32:
                scale, zero = detail.get("quantization", (0.0, 0))
                out = (out.astype(np.float32) - zero) * scale
            results.append(out)
        return results
