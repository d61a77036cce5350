"""Matcher on plain arrays: bands, runner-up, negatives, and the two-pass search for large galleries."""

from __future__ import annotations

import numpy as np
import pytest

from edgeface.gallery import matcher as matcher_module
from edgeface.gallery.matcher import Matcher, Thresholds


def unit_rows(rng, n, dim=512):
    m = rng.normal(size=(n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_bands_runner_up_and_negatives():
    rng = np.random.default_rng(0)
    ana, bo = unit_rows(rng, 2)
    m = Matcher(np.stack([ana, bo]), ["ana", "bo"], Thresholds(0.6, 0.4))
    hit = m.match(ana)
    assert (hit.person, hit.band, hit.runner_up.person) == ("ana", "match", "bo")
    near = ana * 0.5 + unit_rows(rng, 1)[0] * 0.866  # cosine ~0.5 to ana
    assert m.match(near / np.linalg.norm(near)).band == "uncertain"
    assert m.match(unit_rows(rng, 1)[0]).band == "unknown"
    guarded = Matcher(
        np.stack([ana, bo]), ["ana", "bo"], Thresholds(0.6, 0.4), {"ana": ana[None, :]}
    )
    assert guarded.match(ana).person is None, "a probe as close to a negative is not published"


def test_empty_gallery_matches_nobody():
    m = Matcher.empty(Thresholds(0.6, 0.4))
    assert m.match(unit_rows(np.random.default_rng(1), 1)[0]).person is None


def test_two_pass_search_agrees_with_exhaustive(monkeypatch):
    monkeypatch.setattr(matcher_module, "EXHAUSTIVE_LIMIT", 1000)
    rng = np.random.default_rng(2)
    people = 600
    templates = unit_rows(rng, people * 5)
    labels = [f"p{i // 5}" for i in range(people * 5)]
    fast = Matcher(templates, labels, Thresholds(0.6, 0.4))
    assert fast._centres is not None
    for i in rng.choice(len(templates), 50, replace=False):
        probe = templates[i] + 0.05 * rng.normal(size=512).astype(np.float32)
        probe /= np.linalg.norm(probe)
        exhaustive = fast.scores(probe)
        best = int(np.argmax(exhaustive))
        result = fast.match(probe)
        assert result.nearest == fast.person_names[best] == labels[i]
        assert abs(result.score - float(exhaustive[best])) < 1e-5


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def test_a_match_too_close_to_the_runner_up_is_uncertain_not_a_name():
    ana, bo = unit([1, 0.0, 0]), unit([0.8, 0.6, 0])
    probe = unit([0.95, 0.3, 0])  # about 0.95 to ana and 0.94 to bo: a look-alike
    plain = Matcher(np.stack([ana, bo]), ["ana", "bo"], Thresholds(0.6, 0.4))
    assert plain.match(probe).person == "ana"
    careful = Matcher(np.stack([ana, bo]), ["ana", "bo"], Thresholds(0.6, 0.4, margin=0.1))
    match = careful.match(probe)
    assert match.person is None and match.band == "uncertain" and match.nearest == "ana"
    # clear of the runner-up: still a name
    assert careful.match(ana).person == "ana"


def test_a_turned_face_is_uncertain_however_high_it_scores():
    rng = np.random.default_rng(3)
    ana, bo = unit_rows(rng, 2)
    m = Matcher(np.stack([ana, bo]), ["ana", "bo"], Thresholds(0.6, 0.4, 0.1, max_turn=0.8))
    assert m.match(ana, turn=0.3).person == "ana"
    assert m.match(ana).person == "ana"  # no landmarks, no turn: the score decides
    turned = m.match(ana, turn=1.2)
    assert turned.person is None and turned.band == "uncertain" and turned.nearest == "ana"


def test_a_template_close_to_another_person_must_be_beaten_by_the_excess():
    # cam_ana and cam_bo are two people seen by one camera: 0.8 alike (same angle, same light).
    cam_ana, cam_bo, studio_cy = unit([1, 0, 0, 0]), unit([0.8, 0.6, 0, 0]), unit([0, 0, 1, 0])
    gallery, people = np.stack([cam_ana, cam_bo, studio_cy]), ["ana", "bo", "cy"]
    probe = unit([0.7, -0.1, 0.3, 0.64])  # 0.70 to cam_ana, 0.50 to cam_bo, 0.30 to cy
    plain = Matcher(gallery, people, Thresholds(0.6, 0.4, 0.1))
    assert plain.match(probe).person == "ana"
    careful = Matcher(gallery, people, Thresholds(0.6, 0.4, 0.1, crowded=0.4))
    match = careful.match(probe)
    # cam_ana scores 0.8 against bo's template, 0.4 above `crowded`: 0.70 needs 1.0 now
    assert match.crowding == pytest.approx(0.4)
    assert match.person is None and match.band == "uncertain" and match.nearest == "ana"
    # a template that resembles no one else asks nothing more
    cy = careful.match(unit([0, 0.1, 0.8, 0.2]))
    assert cy.person == "cy" and cy.crowding == 0.0
    # the same person's other templates are no crowd
    twins = Matcher(
        np.stack([cam_ana, cam_ana, studio_cy]), ["ana", "ana", "cy"], careful.thresholds
    )
    assert twins.match(probe).person == "ana"


def test_the_daemon_crowding_threshold_is_the_unknown_threshold():
    from edgeface.config import Config

    thresholds = Thresholds.from_config(Config().recognition)
    assert thresholds.crowded == thresholds.unknown


def test_identify_explains_a_match_held_back_by_a_crowded_template():
    from edgeface.identify import _why_uncertain
    from edgeface.types import Match, RunnerUp

    thresholds = Thresholds(0.45, 0.35, 0.1, crowded=0.35)
    held = Match(None, 0.52, RunnerUp("bo", 0.3), "uncertain", "ana", crowding=0.12)
    why = _why_uncertain(held, thresholds, None)
    assert "close to another enrolled person" in why and "needs 0.570" in why
