"""The sinks with a fake publisher: events published and counted, live delivery reported once,
presence on the event's camera, an unknown visitor's best crop kept, snapshots per camera, and
one failing sink not costing the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeface.align import AlignSettings, align_face
from edgeface.analyzer import AnalyzedFace
from edgeface.pipeline.engine import FrameResult, StageTimes, TrackedFace
from edgeface.presence import Presence
from edgeface.problems import Problems
from edgeface.sinks import EventPublisher, Fanout, PresenceSink, Snapshots, UnknownVisitors
from edgeface.stats import RollingStats
from edgeface.types import Box, Event, Face, Frame
from edgeface.unknowns import UnknownStore


class FakePublisher:
    def __init__(self, durable: bool = True) -> None:
        self.durable, self.connected = durable, False
        self.events: list[Event] = []
        self.snapshots: list[str] = []
        self.presence: list[dict[str, Any]] = []
        self.last_error = "disk full"
        self.outbox_depth = self.outbox_dropped = 0

    def publish_event(self, event: Event) -> bool:
        self.events.append(event)
        return self.durable

    def publish_snapshot(self, snapshot_id: str, jpeg: bytes) -> bool:
        self.snapshots.append(snapshot_id)
        return True

    def publish_presence(self, person: str, payload: dict[str, Any]) -> None:
        self.presence.append(payload)

    def clear_presence(self, person: str) -> None:
        pass


def event(kind: str, track: int, person: str | None, camera: str = "door") -> Event:
    return Event(
        id=f"{kind}-{track}",
        type=kind,  # type: ignore[arg-type]
        track_id=track,
        person=person,
        score=0.4,
        runner_up=None,
        box=Box(10, 10, 40, 40),
        camera=camera,
        device="dev",
        ts=100.0 + track,
        model="m",
    )


def frame(camera: str = "door", sequence: int = 1) -> Frame:
    return Frame(np.full((120, 160, 3), 90, np.uint8), 1.0, sequence, camera)


def analyzed(image: np.ndarray) -> AnalyzedFace:
    face = Face(
        Box(40, 30, 50, 50), ((55, 50), (75, 50), (65, 60), (65, 70), (45, 55), (85, 55)), 0.9
    )
    aligned = align_face(image, face, AlignSettings(size=32, margin=0.2))
    return AnalyzedFace(face, aligned, np.ones(8, np.float32) / np.sqrt(8))


def test_events_are_published_counted_and_live_delivery_reported_once() -> None:
    problems, pub = Problems(), FakePublisher(durable=False)
    sink = EventPublisher(pub, problems)  # type: ignore[arg-type]
    stats = RollingStats()
    result = FrameResult([event("unknown", 1, None), event("left", 1, None)], 1, 1, StageTimes())
    for s in (stats, sink):
        s.take(result)
    assert [e.id for e in pub.events] == ["unknown-1", "left-1"]
    assert stats.events == 2 and stats.frames == 0  # end-of-track events, no frame
    assert sink.status()["events_live"] == 2 and sink.status()["events_lost"] == 2
    assert sink.status()["outbox_ok"] is False
    assert problems.last == "outbox unusable, events published live: disk full"
    pub.durable = True
    sink.take(result)
    assert sink.status()["outbox_ok"] is True


def test_presence_is_where_the_person_was_last_recognised() -> None:
    pub = FakePublisher()
    presence = Presence(pub, None, 60)  # type: ignore[arg-type]
    presence.enrolled(["ann"])
    assert pub.presence[-1]["camera"] is None  # not seen yet, and two cameras
    sink = PresenceSink(presence)
    sink.take(FrameResult([event("recognized", 1, "ann", "garage")], 0, 0, StageTimes()))
    assert pub.presence[-1]["camera"] == "garage" and pub.presence[-1]["present"]
    sink.take(FrameResult([event("recognized", 2, "ann", "door")], 0, 0, StageTimes()))
    assert pub.presence[-1]["camera"] == "door"


def test_an_unknown_visitors_best_crop_is_kept(tmp_path: Path) -> None:
    store = UnknownStore(tmp_path, 3600, 0.5)
    sink = UnknownVisitors(store)
    image = frame().image
    face = analyzed(image)
    sink.take(
        FrameResult([], 1, 1, StageTimes(), tracked=[TrackedFace(7, face, 0.5)], frame=frame())
    )
    assert store.crops() == []  # not decided yet
    sink.take(FrameResult([event("unknown", 7, None)], 1, 1, StageTimes(), frame=frame()))
    crops = store.crops()
    assert [c.track_id for c in crops] == [7] and crops[0].weight == 0.5
    sink.take(FrameResult([event("recognized", 8, "ann")], 0, 0, StageTimes()))
    assert len(store.crops()) == 1  # a recognised person is never kept


def test_snapshots_of_each_camera_on_request() -> None:
    pub = FakePublisher()
    one = Snapshots(pub, True, ["door"])  # type: ignore[arg-type]
    assert one.command() == {"ok": False, "error": "no frame yet"}
    one.take(FrameResult([], 0, 0, StageTimes(), frame=frame("door", 12)))
    assert one.command() == {"ok": True, "snapshot": "frame-12"}
    two = Snapshots(pub, True, ["door", "Back yard"])  # type: ignore[arg-type]
    two.take(FrameResult([], 0, 0, StageTimes(), frame=frame("door", 3)))
    two.take(FrameResult([], 0, 0, StageTimes(), frame=frame("Back yard", 5)))
    reply = two.command()
    assert reply["snapshots"]["door"] == "door-frame-3"
    assert reply["snapshots"]["Back yard"].endswith("-frame-5") and "/" not in reply["snapshot"]
    off = Snapshots(pub, False, ["door"])  # type: ignore[arg-type]
    assert "disabled" in off.command()["error"]


def test_a_failing_sink_does_not_cost_the_others() -> None:
    class Broken:
        def take(self, result: FrameResult) -> None:
            raise RuntimeError("oops")

    stats, problems = RollingStats(), Problems()
    Fanout([Broken(), stats], problems).take(FrameResult([], 0, 0, StageTimes(), frame=frame()))
    assert stats.frames == 1 and problems.last == "Broken: RuntimeError: oops"
