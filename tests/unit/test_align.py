"""Five-point alignment: the similarity transform onto the ArcFace template, and its inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeface.align import (
    ARCFACE_TEMPLATE,
    AlignSettings,
    align_face,
    crop_transform,
    similarity_transform,
)
from edgeface.errors import EdgefaceError
from edgeface.types import Box, Face


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _rotated(points: np.ndarray, degrees: float, scale: float, shift: tuple[float, float]):
    a = math.radians(degrees)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ (scale * rotation).T + np.asarray(shift)


def test_similarity_transform_recovers_rotation_scale_and_shift():
    source = _rotated(ARCFACE_TEMPLATE, 17.0, 2.5, (300.0, 120.0))
    matrix = similarity_transform(source, ARCFACE_TEMPLATE)
    assert np.allclose(_apply(matrix, source), ARCFACE_TEMPLATE, atol=1e-6)


def test_five_landmarks_land_on_the_template_at_the_crop_size():
    landmarks = _rotated(ARCFACE_TEMPLATE, -10.0, 3.0, (50.0, 80.0))
    face = Face(
        Box(0, 0, 400, 400), keypoints=(), score=0.9, landmarks=tuple(map(tuple, landmarks))
    )
    for size in (112, 160):
        matrix = crop_transform(face, AlignSettings(size=size, method="five_point"))
        assert np.allclose(_apply(matrix, landmarks), ARCFACE_TEMPLATE * size / 112, atol=1e-6)


def test_blazeface_keypoints_put_the_mouth_centre_between_the_template_corners():
    template = np.vstack([ARCFACE_TEMPLATE[:3], ARCFACE_TEMPLATE[3:].mean(axis=0)])
    points = _rotated(template, 5.0, 2.0, (10.0, 20.0))
    # BlazeFace order: eyes (image-left first here swapped to test the reordering), nose,
    # mouth centre, then the two ears, which alignment ignores.
    keypoints = [points[1], points[0], points[2], points[3], (0.0, 0.0), (999.0, 999.0)]
    face = Face(Box(0, 0, 300, 300), tuple(map(tuple, keypoints)), 0.9)
    matrix = crop_transform(face, AlignSettings(size=112, method="five_point"))
    assert np.allclose(_apply(matrix, points), template, atol=1e-6)


def test_five_point_needs_landmarks_or_four_keypoints():
    face = Face(Box(0, 0, 50, 50), ((10.0, 10.0), (30.0, 10.0)), 0.9)
    with pytest.raises(EdgefaceError, match="five-point alignment"):
        align_face(np.zeros((60, 60, 3), np.uint8), face, AlignSettings(method="five_point"))


def test_an_unknown_alignment_is_refused_by_name():
    with pytest.raises(EdgefaceError, match="alignment 'eyes'"):
        AlignSettings(method="eyes")


def test_the_cache_version_changes_with_the_geometry():
    """Gallery embeddings cached under one crop geometry must not be reused under another."""
    versions = {
        AlignSettings(size=160, margin=0.2).version,
        AlignSettings(size=160, margin=0.3).version,
        AlignSettings(size=112, method="five_point").version,
        AlignSettings(size=160, method="five_point").version,
    }
    assert len(versions) == 4
