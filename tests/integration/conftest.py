"""Fixtures for tests that run the real models and real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config

SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces"


@pytest.fixture(scope="session")
def analyzer() -> FaceAnalyzer:
    return FaceAnalyzer.from_config(Config())


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    if not (SHARED_FACES / "labels.csv").is_file():
        pytest.skip(
            f"shared face photos not found at {SHARED_FACES} (they live beside the checkout)"
        )
    return SHARED_FACES


@pytest.fixture(scope="session")
def astronaut_bgr() -> np.ndarray:
    """A real face photo that a pip package ships (scikit-image's astronaut, Eileen Collins)."""
    skdata = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) not installed")
    return cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def lfw_faces() -> list[np.ndarray]:
    """100 real 25x25 grey LFW face crops shipped by scikit-image, upscaled to BGR 160x160."""
    skdata = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) not installed")
    faces = (skdata.lfw_subset()[:100] * 255).astype(np.uint8)
    return [cv2.cvtColor(cv2.resize(f, (160, 160)), cv2.COLOR_GRAY2BGR) for f in faces]
