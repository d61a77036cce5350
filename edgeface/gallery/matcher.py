"""Matching a probe embedding against the enrolled templates.

Owns: the template matrix, cosine similarity (dot products of unit vectors) against all
templates at once, the best template per person, runner-up and margin, and the two-threshold
banding (match / uncertain / unknown). Never: reads files or computes embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edgeface.types import Band, Embedding, Match, RunnerUp


@dataclass(frozen=True)
class Thresholds:
    match: float
    unknown: float

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
        self.negatives = negatives or {}

    @classmethod
    def empty(cls, thresholds: Thresholds) -> Matcher:
        return cls(np.zeros((0, 512), np.float32), [], thresholds)

    def __len__(self) -> int:
        return len(self.templates)

    def scores(self, probe: Embedding) -> npt.NDArray[np.float32]:
        """Best-template similarity for each person, in `person_names` order."""
        similarities = self.templates @ probe.astype(np.float32)
        return np.maximum.reduceat(similarities, self._starts)

    def match(self, probe: Embedding) -> Match:
        if not self.person_names:
            return Match(person=None, score=0.0, runner_up=None, band="unknown")
        per_person = self.scores(probe)
        top = np.argsort(-per_person)[:2]
        best = int(top[0])
        score = float(per_person[best])
        nearest = self.person_names[best]
        runner_up = (
            RunnerUp(self.person_names[int(top[1])], float(per_person[int(top[1])]))
            if len(top) > 1
            else None
        )
        band = self.thresholds.band(score)
        if band == "match" and self._closer_to_negative(nearest, probe, score):
            band = "uncertain"
        person = nearest if band == "match" else None
        return Match(person=person, score=score, runner_up=runner_up, band=band, nearest=nearest)

    def _closer_to_negative(self, person: str, probe: Embedding, score: float) -> bool:
        negatives = self.negatives.get(person)
        return (
            negatives is not None
            and len(negatives) > 0
            and float((negatives @ probe).max()) >= score
        )
