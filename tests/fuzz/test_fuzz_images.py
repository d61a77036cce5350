"""Runs the atheris image/face-pipeline harness for a bounded time (issue 6).

20 s by default (EDGEFACE_FUZZ_SECONDS overrides; EDGEFACE_SOAK=1 makes it 600 s). The seed
corpus is a small real face (scikit-image's astronaut) as JPEG, PNG and WebP, plus a PNG header
that claims a huge image, so mutations start from inputs that reach the detector.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config

pytest.importorskip("atheris", reason="atheris not installed (pip install atheris)")

HARNESS = Path(__file__).with_name("fuzz_images.py")
SECONDS = int(
    os.environ.get(
        "EDGEFACE_FUZZ_SECONDS", "600" if os.environ.get("EDGEFACE_SOAK") == "1" else "20"
    )
)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _seed_corpus(folder: Path) -> None:
    skdata = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) not installed")
    face = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)[0:260, 100:330]
    face = cv2.resize(face, (96, 108))
    for ext, params in ((".jpg", [cv2.IMWRITE_JPEG_QUALITY, 60]), (".png", []), (".webp", [])):
        ok, data = cv2.imencode(ext, face, params)
        assert ok
        (folder / f"face{ext}").write_bytes(data.tobytes())
    bomb = b"\x89PNG\r\n\x1a\n" + _png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    )
    (folder / "bomb.png").write_bytes(bomb + _png_chunk(b"IEND", b""))


def test_fuzz_decode_and_analyze(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _seed_corpus(corpus)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            str(corpus),
            f"-max_total_time={SECONDS}",
            "-timeout=20",
            "-rss_limit_mb=3072",
            "-max_len=200000",
            f"-artifact_prefix={artifacts}/",
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
    )
    names = sorted(p.name for p in artifacts.iterdir())
    # slow-unit-* (one input > 10 s) is timing, so it depends on the machine's load: reported,
    # not failed; the one known cause is pinned down deterministically below.
    findings = [n for n in names if not n.startswith("slow-unit-")]
    if len(findings) < len(names):
        print("slow inputs:", [n for n in names if n.startswith("slow-unit-")])
    assert result.returncode == 0 and not findings, (findings, result.stderr[-4000:])
    runs = [line for line in result.stderr.splitlines() if line.startswith("Done ")]
    assert runs, result.stderr[-2000:]
    print(runs[-1])


def test_tall_thin_image_costs_no_more_than_a_square_one() -> None:
    analyzer = FaceAnalyzer.from_config(Config())

    def cost(shape: tuple[int, int, int]) -> float:
        image = np.zeros(shape, np.uint8)  # no face: both detector passes run
        start = time.perf_counter()
        analyzer.analyze(image)
        return time.perf_counter() - start

    cost((400, 400, 3))  # warm-up
    square = min(cost((400, 400, 3)) for _ in range(3))
    tall = cost((8000, 48, 3))  # 0.38 MP, well under the decompression-bomb limit
    assert tall < 10 * square + 0.05, f"{tall:.2f}s vs {square:.3f}s for 400x400"
