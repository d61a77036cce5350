"""The engine: one frame in, recognition events out.

Owns: the order of the pure stages for a frame (detect → track → align+embed where needed →
match → vote → events), turning track decisions and departures into `Event`s, and per-stage
timings. Never: touches cameras, files or MQTT; the matcher is fetched from a callable on every
frame so a gallery reload takes effect at the next frame without locking.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from edgeface.align import head_turn
from edgeface.analyzer import AnalyzedFace, FaceAnalyzer
from edgeface.gallery.matcher import Matcher
from edgeface.pipeline.tracker import Decision, Track, Tracker, decide, vote_weight
from edgeface.regions import FrameDetector
from edgeface.types import Event, Frame

# A track that vanishes before it is decided is still reported, if it was seen this often;
# a single-frame blip is more likely a false detection than a visitor.
MIN_VOTES_AT_EXIT = 2


@dataclass
class StageTimes:
    """Seconds spent per stage in the last frame."""

    detect: float = 0.0
    embed: float = 0.0
    match: float = 0.0
    total: float = 0.0


@dataclass(frozen=True)
class TrackedFace:
    """A face embedded this frame, with its track and the weight its vote carried."""

    track_id: int
    face: AnalyzedFace
    weight: float


@dataclass
class FrameResult:
    """What one frame (or, with `frame` None, the end of a camera's tracks) led to."""

    events: list[Event]
    faces: int
    embedded: int
    times: StageTimes
    best_faces: dict[str, AnalyzedFace] = field(default_factory=dict)  # event id -> face
    tracked: list[TrackedFace] = field(default_factory=list)  # every face embedded this frame
    frame: Frame | None = None


class Engine:
    def __init__(
        self,
        analyzer: FaceAnalyzer,
        matcher: Callable[[], Matcher],
        tracker: Tracker,
        device: str,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        timer: Callable[[], float] = time.perf_counter,
        search: FrameDetector | None = None,
    ) -> None:
        """`search`: how this camera's frames are searched (`FaceAnalyzer.camera_detector`);
        None: as the analyzer's configured camera."""
        self.analyzer, self.matcher, self.tracker = analyzer, matcher, tracker
        self.search = search
        self.device, self.new_id, self.timer = device, new_id, timer
        self._camera = ""

    def process(self, frame: Frame) -> FrameResult:
        self._camera = frame.camera
        times = StageTimes()
        t0 = self.timer()
        faces = self.analyzer.detect_frame(frame.image, self.search)
        times.detect = self.timer() - t0
        events: list[Event] = []
        best: dict[str, AnalyzedFace] = {}
        tracked: list[TrackedFace] = []
        embedded = 0
        matcher = self.matcher()
        for obs in self.tracker.observe(faces, frame.timestamp):
            if not obs.needs_embedding:
                continue
            t1 = self.timer()
            analyzed = self.analyzer.embed_face(frame.image, obs.face)
            t2 = self.timer()
            match = matcher.match(analyzed.embedding, head_turn(obs.face))
            times.embed += t2 - t1
            times.match += self.timer() - t2
            embedded += 1
            weight = vote_weight(obs.face, analyzed.aligned.sharpness)
            tracked.append(TrackedFace(obs.track_id, analyzed, weight))
            decision = self.tracker.add_vote(obs.track_id, match, weight, frame.timestamp)
            if decision is not None:
                event = self._decision_event(
                    self.tracker.tracks[obs.track_id], decision, frame.timestamp
                )
                events.append(event)
                best[event.id] = analyzed
        events.extend(self._departures(self.tracker.expire(frame.timestamp), frame.timestamp))
        times.total = self.timer() - t0
        return FrameResult(events, len(faces), embedded, times, best, tracked, frame)

    def finish(self, now: float) -> FrameResult:
        """End every open track (end of a video file, or shutdown)."""
        events = self._departures(self.tracker.expire(now, everything=True), now)
        return FrameResult(events, 0, 0, StageTimes())

    def _departures(self, tracks: list[Track], now: float) -> list[Event]:
        events = []
        for track in tracks:
            if track.decision is None and len(track.votes) >= MIN_VOTES_AT_EXIT:
                track.decision = decide(track.votes)
                events.append(self._decision_event(track, track.decision, track.last_seen))
            if track.decision is not None:
                events.append(
                    Event(
                        id=self.new_id(),
                        type="left",
                        track_id=track.id,
                        person=track.decision.person,
                        score=track.decision.score,
                        runner_up=track.decision.runner_up,
                        box=track.box,
                        camera=self._camera,
                        device=self.device,
                        ts=max(now, track.last_seen),
                        model=self.analyzer.model_name,
                        duration=track.last_seen - track.first_seen,
                    )
                )
        return events

    def _decision_event(self, track: Track, decision: Decision, now: float) -> Event:
        return Event(
            id=self.new_id(),
            type="recognized" if decision.person else "unknown",
            track_id=track.id,
            person=decision.person,
            score=decision.score,
            runner_up=decision.runner_up,
            box=track.box,
            camera=self._camera,
            device=self.device,
            ts=now,
            model=self.analyzer.model_name,
        )
