"""Accuracy metrics on known score sets."""

from __future__ import annotations

import numpy as np

from edgeface.evaluate import (
    ImageResult,
    LabelledImage,
    auc,
    cross_validated_accuracy,
    identification,
    tar_at_far,
)
from edgeface.gallery.matcher import Thresholds


def test_auc_and_tar():
    genuine = np.array([0.9, 0.8, 0.7, 0.4])
    impostor = np.array([0.1, 0.2, 0.5, 0.3])
    assert auc(genuine, impostor) == 15 / 16
    assert tar_at_far(genuine, impostor, 0.0) == 0.75  # above the highest impostor (0.5)
    assert auc(np.array([1.0]), np.array([0.0])) == 1.0


def test_cross_validated_accuracy_is_perfect_on_separable_scores():
    scores = np.concatenate([np.linspace(0.6, 0.9, 20), np.linspace(0.0, 0.4, 20)])
    same = np.array([True] * 20 + [False] * 20)
    mean, _ = cross_validated_accuracy(scores, same)
    assert mean == 1.0


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def test_identification_counts_probes_impostors_and_missing_faces():
    images = [
        LabelledImage(None, "a1", "ana"),  # type: ignore[arg-type]
        LabelledImage(None, "a2", "ana"),  # type: ignore[arg-type]
        LabelledImage(None, "a3", "ana"),  # type: ignore[arg-type]
        LabelledImage(None, "b1", "bo"),  # single image: an impostor probe
        LabelledImage(None, "u1", "unknown"),
        LabelledImage(None, "g1", "group"),  # ignored for identification
    ]
    results = {
        "a1": ImageResult(unit([1, 0, 0]), 0),
        "a2": ImageResult(unit([0.9, 0.1, 0]), 0),
        "a3": ImageResult(None, None),
        "b1": ImageResult(unit([0, 1, 0]), 0),
        "u1": ImageResult(unit([0.95, 0.05, 0]), 0),
        "g1": ImageResult(unit([0, 0, 1]), 0),
    }
    r = identification(images, results, Thresholds(0.6, 0.4))
    assert r["genuine_probes"] == 2 and r["impostor_probes"] == 2
    assert r["no_face"] == 1
    assert r["rank1"] == 0.5  # a2 right, a3 had no face
    assert r["false_positive_identification_rate"] == 0.5  # u1 looks like ana
