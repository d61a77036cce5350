"""Following faces across frames and deciding each track's identity by a weighted vote.

Owns: matching detections to tracks by box overlap, deciding which faces need an embedding
(new or undecided tracks, and a periodic re-check), collecting votes weighted by face size,
sharpness and detector score, the once-per-track decision, and ending tracks that are gone.
Never: runs models, matches embeddings or builds wire payloads; time comes in with each call.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from edgeface.types import Box, Face, Match, RunnerUp


@dataclass(frozen=True)
class TrackerSettings:
    iou_threshold: float = 0.3
    votes_to_decide: int = 3
    lost_after: float = 1.5
    recheck_interval: float = 2.0


@dataclass
class Vote:
    person: str | None  # None: this frame's face was not a confident match
    score: float
    weight: float
    runner_up: RunnerUp | None


@dataclass
class Track:
    id: int
    box: Box
    first_seen: float
    last_seen: float
    votes: list[Vote] = field(default_factory=list)
    last_embedded: float = -math.inf
    decision: Decision | None = None


@dataclass(frozen=True)
class Decision:
    """A track's identity: a person, or None for an unknown face."""

    person: str | None
    score: float
    runner_up: RunnerUp | None


@dataclass(frozen=True)
class Observation:
    """One face in this frame, assigned to a track, and whether it needs an embedding."""

    track_id: int
    face: Face
    needs_embedding: bool


def vote_weight(face: Face, sharpness: float) -> float:
    """Bigger, sharper, more certain faces count more; the terms saturate so none dominates."""
    size = min(1.0, math.sqrt(face.box.area) / 112.0)
    focus = min(1.0, sharpness / 100.0)
    return max(1e-3, size * (0.25 + 0.75 * focus) * face.score)


def decide(votes: list[Vote]) -> Decision:
    """The person holding more than half of the vote weight, otherwise unknown."""
    total = sum(v.weight for v in votes)
    by_person: dict[str, float] = {}
    for v in votes:
        if v.person is not None:
            by_person[v.person] = by_person.get(v.person, 0.0) + v.weight
    if by_person:
        person, weight = max(by_person.items(), key=lambda kv: kv[1])
        if weight > total / 2:
            mine = [v for v in votes if v.person == person]
            score = sum(v.score * v.weight for v in mine) / weight
            runner_ups = [v.runner_up for v in mine if v.runner_up]
            runner_up = max(runner_ups, key=lambda r: r.score) if runner_ups else None
            return Decision(person, score, runner_up)
    best = max(votes, key=lambda v: v.score)
    return Decision(None, best.score, best.runner_up)


class Tracker:
    """IoU tracker; one instance per camera. Not thread-safe: call from the pipeline thread."""

    def __init__(self, settings: TrackerSettings, ids: Iterator[int] | None = None) -> None:
        """`ids` numbers new tracks; the cameras of one daemon share it, so a track id names one
        track of the device (events, unknown visitors) whichever camera saw it."""
        self.settings = settings
        self.tracks: dict[int, Track] = {}
        self._ids = ids if ids is not None else itertools.count(1)

    def observe(self, faces: list[Face], now: float) -> list[Observation]:
        """Assign this frame's faces to tracks (greedy by overlap) and start new tracks."""
        pairs = sorted(
            (
                (face.box.iou(track.box), i, track.id)
                for i, face in enumerate(faces)
                for track in self.tracks.values()
            ),
            reverse=True,
        )
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for iou, face_index, track_id in pairs:
            if iou < self.settings.iou_threshold:
                break
            if face_index in assigned or track_id in used_tracks:
                continue
            assigned[face_index] = track_id
            used_tracks.add(track_id)
        observations = []
        for i, face in enumerate(faces):
            if i in assigned:
                track = self.tracks[assigned[i]]
                track.box, track.last_seen = face.box, now
            else:
                track = Track(next(self._ids), face.box, now, now)
                self.tracks[track.id] = track
            needs = track.decision is None or (
                now - track.last_embedded >= self.settings.recheck_interval
            )
            observations.append(Observation(track.id, face, needs))
        return observations

    def add_vote(self, track_id: int, match: Match, weight: float, now: float) -> Decision | None:
        """Record one frame's match; returns the decision when this vote settles the track."""
        track = self.tracks[track_id]
        track.last_embedded = now
        person = match.person if match.band == "match" else None
        track.votes.append(Vote(person, match.score, weight, match.runner_up))
        if track.decision is None and len(track.votes) >= self.settings.votes_to_decide:
            track.decision = decide(track.votes)
            return track.decision
        return None

    def expire(self, now: float, everything: bool = False) -> list[Track]:
        """Remove and return tracks unseen for `lost_after` seconds (or all, at shutdown)."""
        gone = [
            t
            for t in self.tracks.values()
            if everything or now - t.last_seen > self.settings.lost_after
        ]
        for track in gone:
            del self.tracks[track.id]
        return gone
