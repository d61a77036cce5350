"""Plain data passed between pipeline stages.

Owns: the frozen dataclasses every stage speaks (Frame, Face, Match, Event, ...).
Never: behaviour beyond trivial derived properties; the wire format lives in Event.to_json only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

# OpenCV's stubs type images loosely; uint8 H x W x 3 (BGR unless the name says RGB).
ImageBGR = np.ndarray
Embedding = npt.NDArray[np.float32]

EVENT_SCHEMA_VERSION = "1.0"

Band = Literal["match", "uncertain", "unknown"]
EventType = Literal["recognized", "unknown", "left"]


@dataclass(frozen=True)
class Frame:
    """One decoded camera frame (H x W x 3 uint8, BGR as OpenCV gives it)."""

    image: ImageBGR
    timestamp: float
    sequence: int
    camera: str


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in frame pixels."""

    x: float
    y: float
    w: float
    h: float

    def as_list(self) -> list[int]:
        return [round(self.x), round(self.y), round(self.w), round(self.h)]

    @property
    def area(self) -> float:
        return max(self.w, 0.0) * max(self.h, 0.0)

    def iou(self, other: Box) -> float:
        x1, y1 = max(self.x, other.x), max(self.y, other.y)
        x2 = min(self.x + self.w, other.x + other.w)
        y2 = min(self.y + self.h, other.y + other.h)
        inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Face:
    """A detected face: box, the detector's keypoints (x, y in frame pixels) and its score.

    `keypoints` are what the detector gives, in its order. BlazeFace: right eye, left eye (from
    the subject's view, as MediaPipe names them for a non-mirrored image: index 0 is the eye on
    the image's left), nose tip, mouth centre, right ear tragion, left ear tragion.
    `landmarks` are the five points of the ArcFace template when the detector finds them
    (YuNet): the eye on the image's left, the other eye, nose tip, the mouth corner on the
    image's left, the other; None when it does not (BlazeFace has no mouth corners).
    """

    box: Box
    keypoints: tuple[tuple[float, float], ...]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True)
class AlignedFace:
    """A face crop at the embedder's input size (RGB uint8) plus quality measures."""

    face: Face
    crop_rgb: ImageBGR
    sharpness: float


@dataclass(frozen=True)
class RunnerUp:
    person: str
    score: float


@dataclass(frozen=True)
class Match:
    """Result of matching one embedding against the gallery."""

    person: str | None
    score: float
    runner_up: RunnerUp | None
    band: Band
    nearest: str | None = None
    # How far the template matched resembles another enrolled person beyond the crowding
    # threshold (edgeface.gallery.matcher.Thresholds.crowded): the score must beat `match` by it.
    crowding: float = 0.0

    @property
    def margin(self) -> float:
        return self.score - (self.runner_up.score if self.runner_up else 0.0)


@dataclass(frozen=True)
class Event:
    """A recognition event as published on `<prefix>/<device>/events`."""

    id: str
    type: EventType
    track_id: int
    person: str | None
    score: float
    runner_up: RunnerUp | None
    box: Box
    camera: str
    device: str
    ts: float
    model: str
    duration: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "schema": EVENT_SCHEMA_VERSION,
            "id": self.id,
            "type": self.type,
            "track_id": self.track_id,
            "person": self.person,
            "score": round(float(self.score), 4),
            "runner_up": (
                {"person": self.runner_up.person, "score": round(float(self.runner_up.score), 4)}
                if self.runner_up
                else None
            ),
            "box": self.box.as_list(),
            "camera": self.camera,
            "device": self.device,
            "ts": round(float(self.ts), 3),
            "model": self.model,
        }
        if self.duration is not None:
            payload["duration"] = round(float(self.duration), 3)
        payload.update(self.extra)
        return payload

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
