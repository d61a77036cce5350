"""The frame loop of each camera: source -> engine -> sinks, one thread per camera.

Owns: opening a camera's source (again with backoff when it cannot be opened or a video file
vanishes: `outage` in the status), each frame's walk through that camera's engine to the sinks,
the end of a video file, the per-camera figures (fps, frames, drops, reconnects) and the
per-camera stall detection (`ProgressWatchdog`). `Turns` lets the cameras use the shared models
one frame at a time in arrival order, so each processes its newest frame in turn: when the CPU
cannot keep up, every camera loses the same share of frames (dropped by its source, counted).
One camera's outage, failed frame or end of file never stops another camera.
Never: decides about faces (the engine), publishes (the sinks), or feeds systemd itself (the
daemon's heartbeat asks `Cameras.problem`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import CameraConfig, Config
from edgeface.gallery.matcher import Matcher
from edgeface.pipeline.capture import FrameSource, is_live_source, open_source
from edgeface.pipeline.engine import Engine
from edgeface.pipeline.tracker import Tracker, TrackerSettings
from edgeface.problems import Problems
from edgeface.sinks import Sink
from edgeface.stats import RollingStats
from edgeface.systemd import ProgressWatchdog
from edgeface.types import Frame

log = logging.getLogger(__name__)

# After a stop request, cameras still inside a frame get this long before the daemon goes on.
STOP_GRACE = 5.0


def open_camera(camera: CameraConfig) -> FrameSource:
    return open_source(
        camera.source,
        camera.name,
        camera.fps_cap,
        camera.loop,
        camera.reconnect_max_backoff,
        camera.realtime,
        camera.picamera2,
    )


class Turns:
    """One frame at a time through the shared models, first come first served (a plain lock
    lets the thread that just released it take it again, starving the others)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        me = object()
        with self._cond:
            self._queue.append(me)
            self._cond.wait_for(lambda: self._queue[0] is me)
        try:
            yield
        finally:
            with self._cond:
                self._queue.popleft()
                self._cond.notify_all()


class CameraLoop:
    """One camera: `run()` blocks until `stop` is set or its video file ends."""

    def __init__(
        self,
        camera: CameraConfig,
        engine: Engine,
        sink: Sink,
        problems: Problems,
        stop: threading.Event,
        *,
        turns: Turns,
        stall_timeout: float,
        opener: Callable[[CameraConfig], FrameSource] = open_camera,
    ) -> None:
        self.camera, self.engine, self.sink, self.problems = camera, engine, sink, problems
        self.stop, self.turns, self.opener = stop, turns, opener
        self.name = camera.name
        self.watchdog = ProgressWatchdog(None, stall_timeout)
        self.stats = RollingStats()
        self.finished = False
        # Why the source cannot be opened right now (the source's own `outage` covers a live
        # stream that drops; this covers a file or device that cannot be opened at all).
        self._open_outage: str | None = None
        self._recoveries = 0
        self._source: FrameSource | None = None
        # A live stream that stops delivering without an error (a stalled connection) is an
        # outage of this camera once it has been silent this long, not a stalled pipeline.
        self._silence_limit = max(stall_timeout, 3.0 / camera.fps_cap)
        self._last_frame = time.monotonic()

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.finished = True

    def _run(self) -> None:
        cam = self.camera
        backoff = 0.5
        while not self.stop.is_set():
            try:
                self._source = self.opener(cam)
            except OSError as exc:
                self._down(str(exc), backoff)
                backoff = min(backoff * 2, cam.reconnect_max_backoff)
                continue
            last_ts = time.time()
            self._last_frame = time.monotonic()
            for frame in self._source.frames(self.stop):
                self._last_frame = time.monotonic()
                if self._open_outage is not None:
                    log.info("camera %s is back after: %s", self.name, self._open_outage)
                    self._open_outage = None
                    self._recoveries += 1
                    backoff = 0.5
                self._process(frame)
                last_ts = frame.timestamp
                self._last_frame = time.monotonic()  # time waiting for a turn is not silence
            self.sink.take(self.engine.finish(last_ts))
            vanished = self._source.stats.outage
            if vanished and not self.stop.is_set():
                # A video file that disappeared mid-run: like a camera unplugged, wait for it.
                self._down(vanished, backoff)
                backoff = min(backoff * 2, cam.reconnect_max_backoff)
                continue
            if not (cam.loop or is_live_source(cam.source) or self.stop.is_set()):
                log.info("end of video file %s (camera %s)", cam.source, self.name)
                return

    def _down(self, reason: str, backoff: float) -> None:
        if self._open_outage is None:
            log.warning("camera %s unavailable: %s; retrying with backoff", self.name, reason)
        self._open_outage = reason
        self.problems.report(reason)
        # Waiting for a camera is not a hang: restarting the service would not bring it back.
        self.watchdog.alive(reason="waiting for camera")
        self.stop.wait(backoff)

    def _process(self, frame: Frame) -> None:
        try:
            with self.turns.turn(), self.watchdog.working():
                result = self.engine.process(frame)
        except Exception as exc:  # a bad frame must not end the camera; the watchdog sees it
            log.exception("camera %s: frame %d failed", self.name, frame.sequence)
            self.problems.report(f"frame {frame.sequence}: {type(exc).__name__}: {exc}")
            return
        self.stats.take(result)
        self.sink.take(result)

    @property
    def outage(self) -> str | None:
        """Why this camera delivers no frames right now; None while it does."""
        if self._open_outage is not None:
            return self._open_outage
        if self._source is None:
            return "starting"
        if self._source.stats.outage is not None:
            return self._source.stats.outage
        silent = time.monotonic() - self._last_frame
        if is_live_source(self.camera.source) and silent > self._silence_limit:
            return f"camera {self.name}: no frame for {silent:.0f}s"
        return None

    def problem(self) -> str | None:
        """Why the watchdog must not be fed on this camera's account; None when it may be."""
        if self.finished:
            return None
        if self.outage is not None:
            self.watchdog.alive(reason="waiting for camera")
        return self.watchdog.problem()

    def status(self) -> dict[str, Any]:
        source = self._source
        fps, _ = self.stats.rates()
        return {
            "name": self.name,
            "outage": self.outage,
            "fps": round(fps, 2),
            "frames": self.stats.frames,
            "frames_dropped": source.stats.frames_dropped if source else 0,
            "reconnects": self._recoveries + (source.stats.reconnects if source else 0),
        }


class Cameras:
    """Every camera's loop on its own thread; `run()` returns when all have ended."""

    def __init__(self, loops: list[CameraLoop], stop: threading.Event) -> None:
        self.loops, self.stop = loops, stop

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        analyzer: FaceAnalyzer,
        matcher: Callable[[], Matcher],
        sink: Sink,
        problems: Problems,
        stop: threading.Event,
        stall_timeout: float,
    ) -> Cameras:
        """A loop per configured camera with its own tracker and engine; the models, matcher,
        sinks and track ids (one counter: a track id names one track of the device) shared."""
        turns, ids = Turns(), itertools.count(1)
        loops = []
        for i, camera in enumerate(cfg.all_cameras):
            tracker = Tracker(TrackerSettings(**dataclasses.asdict(cfg.tracking)), ids)
            # The analyzer's own frame search is the first camera's.
            search = analyzer.camera_detector(cfg, camera) if i else None
            engine = Engine(analyzer, matcher, tracker, cfg.device.id, search=search)
            loops.append(
                CameraLoop(
                    camera, engine, sink, problems, stop, turns=turns, stall_timeout=stall_timeout
                )
            )
        return cls(loops, stop)

    def run(self) -> None:
        threads = [
            threading.Thread(target=loop.run, name=f"camera-{loop.name}", daemon=True)
            for loop in self.loops
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive() and not self.stop.is_set():
                thread.join(0.25)
        # On a stop request a camera inside a frame finishes it (and its tracks); a hung one is
        # left behind rather than holding up the flush of everything else.
        deadline = time.monotonic() + STOP_GRACE
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def problem(self) -> str | None:
        """The first camera that stalls the pipeline, a hung frame first (it holds the models,
        so the other cameras wait behind it)."""
        found = [
            (loop.watchdog.hung(), loop.name, p) for loop in self.loops if (p := loop.problem())
        ]
        if not found:
            return None
        _, name, problem = max(found, key=lambda f: f[0])
        return f"camera {name}: {problem}"

    def status(self) -> dict[str, Any]:
        """`camera` (the first camera, as before there were several) and `cameras` (each)."""
        cameras = [loop.status() for loop in self.loops]
        return {"camera": cameras[0], "cameras": cameras}
