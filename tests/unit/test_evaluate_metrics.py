"""Accuracy metrics on known score sets."""

from __future__ import annotations

import numpy as np
import pytest

from edgeface.evaluate import (
    ImageResult,
    LabelledImage,
    ProbeOutcome,
    auc,
    cross_validated_accuracy,
    format_probe_errors,
    identification,
    probe_errors,
    tar_at_far,
)
from edgeface.gallery.matcher import Thresholds
from edgeface.types import RunnerUp


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
    # ana's three photos are each probed against the other two (leave one out)
    assert r["genuine_probes"] == 3 and r["impostor_probes"] == 2
    assert r["no_face"] == 1 and r["enrolled_without_face"] == 1
    assert r["rank1"] == 2 / 3  # a1 and a2 find each other, a3 had no face
    assert r["correct_accept_rate"] == 2 / 3 and r["misidentified"] == 0
    assert r["false_positive_identification_rate"] == 0.5  # u1 looks like ana
    # the lowest threshold naming no stranger sits just above u1's score
    assert r["at_fpir_1e-2"]["strangers_accepted"] == 0
    assert r["at_fpir_1e-2"]["threshold"] > float(results["u1"].embedding @ results["a1"].embedding)


def test_identification_counts_strangers_named_and_people_misnamed_separately():
    ana, bo = unit([1, 0, 0]), unit([0, 1, 0])
    names = [("a1", "ana"), ("a2", "ana"), ("b1", "bo"), ("b2", "bo"), ("s1", "stranger")]
    images = [LabelledImage(None, n, who) for n, who in names]  # type: ignore[arg-type]
    results = {
        "a1": ImageResult(ana, 0),
        "a2": ImageResult(unit([0.2, 1, 0]), 0),  # ana's photo that looks like bo
        "b1": ImageResult(bo, 0),
        "b2": ImageResult(unit([0, 1, 0.1]), 0),
        "s1": ImageResult(unit([1, 0.05, 0]), 0),  # a stranger very like ana
    }
    r = identification(images, results, Thresholds(0.6, 0.4))
    # a2 is named bo (misidentified); a1 is missed, its only ana template being a2
    assert r["misidentified"] == 1 and r["missed"] == 1
    assert r["strangers_accepted"] == 1 and r["correct_accept_rate"] == 0.5


def test_identification_with_no_one_enrollable_counts_everyone_as_a_stranger():
    images = [
        LabelledImage(None, "a1", "ana"),  # type: ignore[arg-type]
        LabelledImage(None, "b1", "bo"),  # type: ignore[arg-type]
    ]
    results = {"a1": ImageResult(unit([1, 0, 0]), 0), "b1": ImageResult(unit([0, 1, 0]), 0)}
    r = identification(images, results, Thresholds(0.6, 0.4))
    assert r["genuine_probes"] == 0 and r["impostor_probes"] == 2
    assert r["strangers_accepted"] == 0


def test_probe_errors_name_the_photo_the_name_its_score_and_the_runner_up() -> None:
    outcomes = [
        ProbeOutcome(True, "ana", "bo", 0.71, True, "ana/2.jpg", RunnerUp("ana", 0.69)),
        ProbeOutcome(True, "ana", "ana", 0.9, True, "ana/1.jpg", RunnerUp("bo", 0.2)),
        ProbeOutcome(False, "unknown", "ana", 0.8, True, "x.jpg", None),
        ProbeOutcome(False, "unknown", "ana", 0.3, True, "y.jpg", None),  # below: not named
        ProbeOutcome(True, "bo", "ana", 0.95, False, "bo/1.jpg", RunnerUp("bo", 0.94)),  # unclear
        ProbeOutcome(True, "bo", None, -1.0, False, "bo/2.jpg"),  # no face: a miss
    ]
    errors = probe_errors(outcomes, 0.6)
    assert errors == [
        {
            "photo": "x.jpg",
            "kind": "stranger_accepted",
            "identity": "unknown",
            "named": "ana",
            "score": 0.8,
            "runner_up": None,
            "runner_up_score": None,
        },
        {
            "photo": "ana/2.jpg",
            "kind": "misidentified",
            "identity": "ana",
            "named": "bo",
            "score": 0.71,
            "runner_up": "ana",
            "runner_up_score": 0.69,
        },
    ]
    lines = format_probe_errors("m", errors, limit=1)
    assert lines == [
        "m: 2 wrong name(s) at the operating point (photo, label -> name)",
        "  stranger      x.jpg: unknown -> ana 0.800",
        "  ... and 1 more (all of them in --json)",
    ]
    assert format_probe_errors("m", []) == []


def test_split_enrols_one_part_and_probes_another_per_size_band():
    from edgeface.evaluate import path_selector, split_identification

    images = [
        LabelledImage(None, "ana/studio.jpg", "ana"),  # type: ignore[arg-type]
        LabelledImage(None, "ana/cam1.jpg", "ana"),  # type: ignore[arg-type]
        LabelledImage(None, "ana/cam2.jpg", "ana"),  # type: ignore[arg-type]
        LabelledImage(None, "bo/studio.jpg", "bo"),  # type: ignore[arg-type]
        LabelledImage(None, "bo/cam1.jpg", "bo"),  # type: ignore[arg-type]
        LabelledImage(None, "cy/cam1.jpg", "cy"),  # type: ignore[arg-type]  # not enrolled
    ]
    results = {
        "ana/studio.jpg": ImageResult(unit([1, 0, 0]), 0, 200.0),
        "ana/cam1.jpg": ImageResult(unit([0.9, 0.2, 0]), 0, 40.0),
        "ana/cam2.jpg": ImageResult(None, None),
        "bo/studio.jpg": ImageResult(unit([0, 1, 0]), 0, 200.0),
        "bo/cam1.jpg": ImageResult(unit([0.8, 0.6, 0]), 0, 90.0),  # nearer ana than bo
        "cy/cam1.jpg": ImageResult(unit([0, 0.1, 1]), 0, 60.0, turn=2.0),
    }
    r = split_identification(
        images,
        results,
        Thresholds(0.6, 0.4, 0.0),
        path_selector("*/studio.jpg"),
        path_selector("*/cam*"),
    )
    assert (r["genuine_probes"], r["impostor_probes"], r["no_face"]) == (3, 1, 1)
    assert r["misidentified"] == 1  # bo's camera frame is named ana
    bands = {b["band"]: b for b in r["bands"]}
    assert bands["0-48px"]["correct"] == 1 and bands["80-128px"]["misidentified"] == 1
    assert bands["48-80px"]["strangers"] == 1 and bands["no face"]["missed"] == 1


def test_split_leaves_a_photo_out_of_the_gallery_while_it_is_probed():
    from edgeface.evaluate import path_selector, split_probes

    images = _camera_frames("ana/cam1.jpg", "ana/cam2.jpg", "bo/cam1.jpg")
    results = {
        "ana/cam1.jpg": ImageResult(unit([1, 0, 0]), 0, 50.0),
        "ana/cam2.jpg": ImageResult(unit([0.95, 0.1, 0]), 0, 50.0),
        "bo/cam1.jpg": ImageResult(unit([0, 1, 0]), 0, 50.0),
    }
    every = path_selector("*/cam*")
    outcomes, _ = split_probes(images, results, every, every, Thresholds(-2, -2, 0.0))
    ana1, ana2, bo = outcomes
    assert ana2.nearest == "ana"
    assert ana1.nearest == "ana" and ana1.score < 1.0  # its own photo is not in the gallery
    assert not bo.genuine  # bo's only enrolled photo is the probe itself: a stranger


def test_a_crowded_template_raises_the_bar_in_eval_as_in_the_daemon():
    """Two people seen by one camera (their frames 0.8 alike): eval's swept threshold applies to
    the score less the matched template's crowding, as the daemon's matcher does."""
    from edgeface.evaluate import path_selector, split_probes

    images = _camera_frames("ana/cam1.jpg", "ana/cam2.jpg", "bo/cam1.jpg", "bo/cam2.jpg")
    results = {
        "ana/cam1.jpg": ImageResult(unit([1, 0, 0]), 0, 50.0),
        "ana/cam2.jpg": ImageResult(unit([0.6, 0.8, 0]), 0, 50.0),
        "bo/cam1.jpg": ImageResult(unit([0.8, 0, 0.6]), 0, 50.0),
        "bo/cam2.jpg": ImageResult(unit([0, 0, 1]), 0, 50.0),
    }
    every = path_selector("*/cam*")
    plain, _ = split_probes(images, results, every, every, Thresholds(-2, -2, 0.1))
    careful, _ = split_probes(images, results, every, every, Thresholds(-2, -2, 0.1, crowded=0.4))
    # bo/cam1 is nearest ana/cam1 (0.8) and would be named ana at 0.6
    assert plain[2].named(0.6) == "ana"
    # ana/cam1 itself scores 0.8 against bo/cam1 - but that is the probe, left out; against
    # bo/cam2 it scores 0: no crowd, so the rule changes nothing here ...
    assert careful[2].named(0.6) == "ana"
    # ... while ana/cam2's probe meets ana/cam1, which is 0.8 from bo/cam1 (in the gallery):
    assert plain[1].named(0.6) == "ana" and plain[1].crowding == 0.0
    assert careful[1].crowding == pytest.approx(0.4) and careful[1].named(0.6) is None


def _camera_frames(*paths: str) -> list[LabelledImage]:
    """Labelled images whose identity is the folder of their path (no file behind them)."""
    return [LabelledImage(None, path, path.split("/")[0]) for path in paths]  # type: ignore[arg-type]
