"""What happens to a processed frame and its decided events, after the engine: the sinks.

Owns: the last step of a frame's walk (camera -> engine -> events -> sinks). Each sink takes the
engine's `FrameResult` (the frame, the faces embedded in it, the events it decided; at the end of
a camera's tracks only events) and does one thing with it:

- `EventPublisher`: every event to MQTT, durably through the outbox (else live, counted), and one
  log line per event;
- `PresenceSink`: a recognised person is present, on the camera of the event;
- `UnknownVisitors`: each open track's best crop so far, kept once the track is decided unknown;
- `Snapshots`: the best face crop of a decided event (`mqtt.snapshots`), and each camera's latest
  frame for `cmd/snapshot`;
- `stats.RollingStats`: frame, face and event figures for the status.

`Fanout` hands a result to each sink in turn; one that fails is reported and the others still
run. Never: runs a model, decides who someone is, or hands anything back to the camera.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import cv2

from edgeface.errors import EdgefaceError
from edgeface.pipeline.engine import FrameResult
from edgeface.presence import Presence
from edgeface.problems import Problems
from edgeface.publish.mqtt import MqttPublisher, slugify
from edgeface.publish.offline import MqttOff
from edgeface.types import Embedding, Frame, ImageBGR
from edgeface.unknowns import UnknownStore, enrollment_crop

log = logging.getLogger(__name__)


class Sink(Protocol):
    def take(self, result: FrameResult) -> None: ...


class Fanout:
    """Every sink, in order, for each result; from any camera thread."""

    def __init__(self, sinks: Sequence[Sink], problems: Problems) -> None:
        self.sinks, self.problems = list(sinks), problems

    def take(self, result: FrameResult) -> None:
        for sink in self.sinks:
            try:
                sink.take(result)
            except Exception as exc:  # one sink's bug must not cost the others or the camera
                log.exception("%s failed", type(sink).__name__)
                self.problems.report(f"{type(sink).__name__}: {type(exc).__name__}: {exc}")


class EventPublisher:
    """Events to MQTT; notes whether they were stored durably (False: sent live, or, offline,
    lost) and says so in the status."""

    def __init__(self, publisher: MqttPublisher | MqttOff, problems: Problems) -> None:
        self.publisher, self.problems = publisher, problems
        self._lock = threading.Lock()
        self.outbox_problem: str | None = None
        self.events_live = 0  # published without the durable outbox (it was unusable)
        self.events_lost = 0  # ...of which the broker was not connected either

    def take(self, result: FrameResult) -> None:
        for event in result.events:
            try:
                durable = self.publisher.publish_event(event)
            except EdgefaceError as exc:
                self.problems.report(str(exc))
            else:
                self._note_outbox(durable)
            log.info(
                "event %s track %d %s score %.3f camera %s",
                event.type,
                event.track_id,
                event.person or "-",
                event.score,
                event.camera,
            )

    def _note_outbox(self, durable: bool) -> None:
        with self._lock:
            if durable:
                if self.outbox_problem is not None:
                    log.info("outbox usable again; events are stored durably")
                    self.outbox_problem = None
                return
            self.events_live += 1
            if not self.publisher.connected:
                self.events_lost += 1
            problem = (
                f"outbox unusable, events published live: {self.publisher.last_error or 'unknown'}"
            )
            if problem != self.outbox_problem:
                self.outbox_problem = problem
                self.problems.report(problem)

    def status(self) -> dict[str, Any]:
        pub = self.publisher
        return {
            "outbox_depth": pub.outbox_depth,
            "outbox_dropped": pub.outbox_dropped,
            "outbox_ok": self.outbox_problem is None,
            "events_live": self.events_live,
            "events_lost": self.events_lost,
            "mqtt_enabled": not isinstance(pub, MqttOff),
            "mqtt_connected": pub.connected,
        }


class PresenceSink:
    """A person named by an event is present, last seen on the event's camera."""

    def __init__(self, presence: Presence) -> None:
        self.presence = presence

    def take(self, result: FrameResult) -> None:
        for event in result.events:
            if event.person:
                self.presence.seen(event.person, event.ts, event.camera)


class UnknownVisitors:
    """Remembers each open track's best-weighted crop (in memory only) and stores it once the
    track is decided unknown; a departure finalises and forgets it."""

    def __init__(self, store: UnknownStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        # Track ids are unique across the device's cameras (one id counter for all trackers).
        self._best: dict[int, tuple[float, Embedding, ImageBGR]] = {}

    def take(self, result: FrameResult) -> None:
        with self._lock:
            if result.frame is not None:
                self._keep_best(result.frame, result)
            decided = []
            for event in result.events:
                best = self._best.get(event.track_id)
                if event.person is None and best is not None and event.type in ("unknown", "left"):
                    decided.append((event.track_id, best, event.ts))
                if event.type == "left":
                    self._best.pop(event.track_id, None)
        for track_id, (weight, embedding, crop), ts in decided:
            self.store.add(track_id, embedding, crop, weight, ts)

    def _keep_best(self, frame: Frame, result: FrameResult) -> None:
        for tracked in result.tracked:
            kept = self._best.get(tracked.track_id)
            if kept is None or tracked.weight > kept[0]:
                crop = enrollment_crop(frame.image, tracked.face.face.box)
                self._best[tracked.track_id] = (tracked.weight, tracked.face.embedding, crop)


class Snapshots:
    """JPEG snapshots: a decided event's best face crop when `enabled`, and on request each
    camera's latest frame."""

    def __init__(
        self, publisher: MqttPublisher | MqttOff, enabled: bool, cameras: Sequence[str]
    ) -> None:
        self.publisher, self.enabled, self.cameras = publisher, enabled, list(cameras)
        self._latest: dict[str, Frame] = {}

    def take(self, result: FrameResult) -> None:
        if result.frame is not None:
            self._latest[result.frame.camera] = result.frame
        if not self.enabled:
            return
        for event_id, face in result.best_faces.items():
            crop = cv2.cvtColor(face.aligned.crop_rgb, cv2.COLOR_RGB2BGR)
            ok, jpeg = cv2.imencode(".jpg", crop)
            if ok:
                self.publisher.publish_snapshot(event_id, jpeg.tobytes())

    def command(self) -> dict[str, Any]:
        """`cmd/snapshot`: each camera's latest frame as `snapshot/frame-<n>` (one camera) or
        `snapshot/<camera>-frame-<n>`."""
        if not self.enabled:
            return {"ok": False, "error": "snapshots are disabled (mqtt.snapshots: false)"}
        frames = [self._latest[c] for c in self.cameras if c in self._latest]
        if not frames:
            return {"ok": False, "error": "no frame yet"}
        ids: dict[str, str] = {}
        for frame in frames:
            ok, jpeg = cv2.imencode(".jpg", frame.image)
            if not ok:
                return {"ok": False, "error": "encoding failed"}
            prefix = "" if len(self.cameras) == 1 else f"{slugify(frame.camera)}-"
            ids[frame.camera] = f"{prefix}frame-{frame.sequence}"
            self.publisher.publish_snapshot(ids[frame.camera], jpeg.tobytes())
        reply: dict[str, Any] = {"ok": True, "snapshot": next(iter(ids.values()))}
        if len(self.cameras) > 1:
            reply["snapshots"] = ids
        return reply
