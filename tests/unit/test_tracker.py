"""Tracker and vote on plain data: one decision per track, departures, weighting."""

from __future__ import annotations

from edgeface.pipeline.tracker import Tracker, TrackerSettings, Vote, decide, vote_weight
from edgeface.types import Box, Face, Match, RunnerUp


def face(x: float, size: float = 100, score: float = 0.9) -> Face:
    return Face(Box(x, 50, size, size), ((0, 0),) * 6, score)


def match(person: str | None, score: float) -> Match:
    band = "match" if person else "unknown"
    return Match(person, score, RunnerUp("other", 0.2), band, nearest=person)


def test_same_face_keeps_its_track_and_new_face_gets_a_new_one():
    tracker = Tracker(TrackerSettings())
    first = tracker.observe([face(100)], now=0.0)
    second = tracker.observe([face(105), face(400)], now=0.1)
    assert second[0].track_id == first[0].track_id
    assert second[1].track_id != first[0].track_id


def test_decision_happens_once_after_enough_votes():
    tracker = Tracker(TrackerSettings(votes_to_decide=3, recheck_interval=10))
    decisions = []
    for i in range(6):
        obs = tracker.observe([face(100 + i)], now=i * 0.1)[0]
        if obs.needs_embedding:
            decisions.append(tracker.add_vote(obs.track_id, match("ana", 0.8), 1.0, i * 0.1))
    assert [d.person for d in decisions if d] == ["ana"]
    assert len(decisions) == 3, "a decided track is not re-embedded before the re-check interval"


def test_majority_of_weight_decides_and_minority_is_unknown():
    votes = [Vote("ana", 0.8, 1.0, None), Vote(None, 0.3, 0.5, None), Vote("bo", 0.7, 0.4, None)]
    assert decide(votes).person == "ana"
    split = [Vote("ana", 0.8, 1.0, None), Vote(None, 0.3, 1.2, None)]
    assert decide(split).person is None


def test_tracks_expire_after_lost_after():
    tracker = Tracker(TrackerSettings(lost_after=1.0))
    tracker.observe([face(100)], now=0.0)
    assert tracker.expire(now=0.5) == []
    gone = tracker.expire(now=1.6)
    assert len(gone) == 1 and not tracker.tracks


def test_bigger_sharper_faces_weigh_more():
    assert vote_weight(face(0, size=120), 200) > vote_weight(face(0, size=40), 200)
    assert vote_weight(face(0), 200) > vote_weight(face(0), 5)
