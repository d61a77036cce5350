"""runtime.delegate names a TFLite delegate that is not there: fall back to the CPU or refuse.

Through FaceAnalyzer.from_config (what the daemon and the gallery call) and through the CLI
(`edgeface identify`, `edgeface run`), with a real missing library path.
"""

from __future__ import annotations

import dataclasses
import gc
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config, RuntimeConfig
from edgeface.errors import EdgefaceError

MISSING = "/nonexistent/libedgetpu.so.1"


@pytest.fixture(autouse=True)
def collect_failed_delegates():
    """ai-edge-litert leaves a half-built Delegate whose __del__ raises; collect it here rather
    than at a random later moment (on CPython 3.11 one inside pytest's AST work broke the run)."""
    yield
    gc.collect()


def with_delegate(fallback: str) -> Config:
    return dataclasses.replace(
        Config(),
        runtime=RuntimeConfig(delegate=MISSING, delegate_fallback=fallback),  # type: ignore[arg-type]
    )


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_fallback_cpu_gives_the_same_embeddings(analyzer, astronaut_bgr):
    fallback = FaceAnalyzer.from_config(with_delegate("cpu"))
    (cpu,) = analyzer.analyze(astronaut_bgr)
    (fell_back,) = fallback.analyze(astronaut_bgr)
    np.testing.assert_allclose(fell_back.embedding, cpu.embedding, atol=1e-5)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_refuse_is_one_error_naming_the_key_and_the_library():
    with pytest.raises(EdgefaceError) as info:
        FaceAnalyzer.from_config(with_delegate("refuse"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"runtime.delegate '{MISSING}': could not be loaded")
    assert "No such file" in message


def cli(tmp_path: Path, fallback: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "gallery").mkdir(exist_ok=True)
    config = tmp_path / f"{fallback}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "runtime": {"delegate": MISSING, "delegate_fallback": fallback},
                "gallery": {"path": "gallery"},
                "state_dir": "state",
                "camera": {"source": str(tmp_path / "none.avi")},
                "mqtt": {"port": 1},
            }
        )
    )
    return subprocess.run(
        [sys.executable, "-m", "edgeface", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def photo(tmp_path: Path, astronaut_bgr) -> str:
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), astronaut_bgr)
    return str(path)


def test_cli_fallback_runs_on_cpu(tmp_path, photo):
    result = cli(tmp_path, "cpu", "identify", photo)
    assert result.returncode == 0, result.stderr
    # a face found and embedded on the CPU; the gallery is empty
    assert f"{photo}: a face, not compared: no one is enrolled" in result.stdout


def test_cli_fallback_says_so_clearly(tmp_path, photo):
    result = cli(tmp_path, "cpu", "identify", photo)
    warning = [line for line in result.stderr.splitlines() if "runtime.delegate" in line]
    assert warning and "CPU" in warning[0], result.stderr


@pytest.mark.parametrize("command", [["identify", "x.jpg"], ["run"]])
def test_cli_refuse_exits_with_the_error_line(tmp_path, command):
    result = cli(tmp_path, "refuse", *command)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgeface:")]
    assert len(lines) == 1
    assert lines[0].startswith(f"edgeface: runtime.delegate '{MISSING}': could not be loaded")


def test_cli_refuse_prints_no_traceback(tmp_path):
    result = cli(tmp_path, "refuse", "identify", "x.jpg")
    assert "Traceback" not in result.stderr, result.stderr
