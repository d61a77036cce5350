"""Matching a probe embedding against the enrolled templates.

Owns: the template matrix, cosine similarity (dot products of unit vectors) against all
templates at once, the best template per person, runner-up and margin, and the two-threshold
banding (match / uncertain / unknown). Never: reads files or computes embeddings.

Large galleries are searched in two passes: per-person centres pick a shortlist, then the
shortlist's templates are scored exactly. Scoring every template is memory-bound (50,000
templates are 100 MB read per probe); the centres are a fifth of that with five photos each.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from edgeface.types import Band, Embedding, Match, RunnerUp

if TYPE_CHECKING:
    from edgeface.config import RecognitionConfig

# Up to this many templates every one is scored; above it the two-pass search is used.
EXHAUSTIVE_LIMIT = 20_000
# People whose templates are scored exactly after the first pass.
SHORTLIST = 64


@dataclass(frozen=True)
class Thresholds:
    match: float
    unknown: float
    # A best person closer than this to the runner-up is uncertain: on look-alikes the nearest
    # enrolled person is often not the right one, and naming no one is the safe answer.
    margin: float = 0.0
    # A face turned further than this (edgeface.align.head_turn) is never named, only uncertain:
    # on turned camera faces the nearest person is often someone else (README "Operating points").
    max_turn: float = float("inf")
    # A template that itself scores above this against another enrolled person's template
    # already looks like someone else (same camera, same light): a probe it matches must beat
    # `match` by that excess to be named (README "Operating points"). The daemon's is `unknown`,
    # where impostor pairs reach 1 in 1,000; infinity turns the rule off.
    crowded: float = float("inf")

    @classmethod
    def from_config(cls, recognition: RecognitionConfig) -> Thresholds:
        return cls(
            match=recognition.match_threshold,
            unknown=recognition.unknown_threshold,
            margin=recognition.ambiguity_margin,
            max_turn=recognition.max_turn,
            crowded=recognition.unknown_threshold,
        )

    def band(self, score: float) -> Band:
        if score >= self.match:
            return "match"
        if score < self.unknown:
            return "unknown"
        return "uncertain"


class Matcher:
    """Immutable index over templates; build a new one when the gallery changes."""

    def __init__(
        self,
        embeddings: npt.NDArray[np.float32],
        people: list[str],
        thresholds: Thresholds,
        negatives: dict[str, npt.NDArray[np.float32]] | None = None,
    ) -> None:
        if len(people) != len(embeddings):
            raise ValueError("one person label per template expected")
        order = np.argsort(np.asarray(people, dtype=object), kind="stable")
        self.thresholds = thresholds
        self.people_sorted = [people[i] for i in order]
        matrix = np.asarray(embeddings, dtype=np.float32)
        # reshape(0, -1) is ambiguous for numpy; an empty gallery keeps its embedding width.
        width = -1 if people else (matrix.shape[-1] if matrix.ndim > 1 else 0)
        self.templates = np.ascontiguousarray(matrix.reshape(len(people), width)[order])
        names, starts = np.unique(np.asarray(self.people_sorted, dtype=object), return_index=True)
        self.person_names: list[str] = [str(n) for n in names]
        self._starts = starts.astype(np.intp)
        self._ends = np.append(self._starts[1:], len(self.templates)).astype(np.intp)
        self.negatives = negatives or {}
        self._centres: npt.NDArray[np.float32] | None = None
        if len(self.templates) > EXHAUSTIVE_LIMIT:
            sums = np.add.reduceat(self.templates, self._starts, axis=0)
            self._centres = (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32)

    def with_thresholds(self, thresholds: Thresholds) -> Matcher:
        """The same index banded with other thresholds (a reload), without rebuilding it."""
        if thresholds == self.thresholds:
            return self
        other = copy.copy(self)
        other.thresholds = thresholds
        return other

    @classmethod
    def empty(cls, thresholds: Thresholds) -> Matcher:
        return cls(np.zeros((0, 512), np.float32), [], thresholds)

    def __len__(self) -> int:
        return len(self.templates)

    def scores(self, probe: Embedding) -> npt.NDArray[np.float32]:
        """Best-template similarity for each person, in `person_names` order."""
        similarities = self.templates @ probe.astype(np.float32)
        return np.maximum.reduceat(similarities, self._starts)

    def _candidates(self, probe: Embedding) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
        """Person indices and their best-template scores: everyone, or the shortlist."""
        if self._centres is None or len(self.person_names) <= SHORTLIST:
            return np.arange(len(self.person_names)), self.scores(probe)
        coarse = self._centres @ probe
        people = np.argpartition(-coarse, SHORTLIST - 1)[:SHORTLIST]
        lengths = self._ends[people] - self._starts[people]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        rows = np.repeat(self._starts[people] - offsets, lengths) + np.arange(lengths.sum())
        similarities = self.templates[rows] @ probe
        return people, np.maximum.reduceat(similarities, offsets)

    def match(self, probe: Embedding, turn: float | None = None) -> Match:
        """The nearest person and the band; `turn` is the probe face's head turn, if known."""
        if not self.person_names:
            return Match(person=None, score=0.0, runner_up=None, band="unknown")
        people, per_person = self._candidates(probe.astype(np.float32))
        count = min(2, len(per_person))
        top = np.argpartition(-per_person, count - 1)[:count]
        top = top[np.argsort(-per_person[top])]
        best = int(top[0])
        score = float(per_person[best])
        nearest = self.person_names[int(people[best])]
        runner_up = (
            RunnerUp(self.person_names[int(people[top[1]])], float(per_person[top[1]]))
            if len(top) > 1
            else None
        )
        band = self.thresholds.band(score)
        crowding = self._crowding(int(people[best]), probe) if band == "match" else 0.0
        if band == "match" and (
            (runner_up is not None and score - runner_up.score < self.thresholds.margin)
            or (turn is not None and turn > self.thresholds.max_turn)
            or score - crowding < self.thresholds.match
            or self._closer_to_negative(nearest, probe, score)
        ):
            band = "uncertain"
        person = nearest if band == "match" else None
        return Match(person, score, runner_up, band, nearest, crowding)

    def _crowding(self, person: int, probe: Embedding) -> float:
        """How far the person's template nearest to `probe` scores above `thresholds.crowded`
        against any other person's template (0 when it does not). Computed only for a claimed
        match: one more pass over the templates."""
        if not np.isfinite(self.thresholds.crowded) or len(self.person_names) < 2:
            return 0.0
        start, end = self._starts[person], self._ends[person]
        own = self.templates[start:end]
        template = own[int(np.argmax(own @ probe.astype(np.float32)))]
        similarities = self.templates @ template
        similarities[start:end] = -np.inf
        return max(0.0, float(similarities.max()) - self.thresholds.crowded)

    def _closer_to_negative(self, person: str, probe: Embedding, score: float) -> bool:
        negatives = self.negatives.get(person)
        return (
            negatives is not None
            and len(negatives) > 0
            and float((negatives @ probe).max()) >= score
        )
