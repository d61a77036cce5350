"""The per-camera frame loop with fake sources and engines: frames reach the sinks, a camera that
cannot be opened is an outage that does not stop another camera, a failed frame is reported and
skipped, the stall is named by camera, and the models are shared in turn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgeface.config import CameraConfig
from edgeface.pipeline.cameras import CameraLoop, Cameras, Turns
from edgeface.pipeline.capture import CaptureStats
from edgeface.pipeline.engine import FrameResult, StageTimes
from edgeface.problems import Problems
from edgeface.types import Frame


class FakeSource:
    def __init__(self, camera: str, count: int) -> None:
        self.camera, self.count = camera, count
        self.stats = CaptureStats()

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        for n in range(1, self.count + 1):
            if stop.is_set():
                return
            yield Frame(np.zeros((4, 4, 3), np.uint8), float(n), n, self.camera)


class FakeEngine:
    def __init__(self, fail_on: int | None = None, hang: threading.Event | None = None) -> None:
        self.fail_on, self.hang = fail_on, hang

    def process(self, frame: Frame) -> FrameResult:
        if self.hang is not None:
            self.hang.wait(10)
        if frame.sequence == self.fail_on:
            raise ValueError("bad frame")
        return FrameResult([], 0, 0, StageTimes(), frame=frame)

    def finish(self, now: float) -> FrameResult:
        return FrameResult([], 0, 0, StageTimes())


class Collect:
    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.lock = threading.Lock()

    def take(self, result: FrameResult) -> None:
        with self.lock:
            self.results.append(result)

    def frames(self, camera: str) -> list[int]:
        with self.lock:
            return [r.frame.sequence for r in self.results if r.frame and r.frame.camera == camera]


def loop(
    name: str,
    sink: Collect,
    stop: threading.Event,
    opener: Any,
    engine: Any = None,
    problems: Problems | None = None,
    turns: Turns | None = None,
) -> CameraLoop:
    camera = CameraConfig(source="clip.avi", name=name, reconnect_max_backoff=0.1)
    return CameraLoop(
        camera,
        engine or FakeEngine(),
        sink,
        problems or Problems(),
        stop,
        turns=turns or Turns(),
        stall_timeout=1.0,
        opener=opener,
    )


def test_frames_reach_the_sink_and_a_file_ends_the_loop() -> None:
    sink, stop = Collect(), threading.Event()
    cam = loop("door", sink, stop, lambda c: FakeSource(c.name, 5))
    cam.run()
    assert sink.frames("door") == [1, 2, 3, 4, 5]
    assert sink.results[-1].frame is None  # the end of the tracks
    assert cam.finished and cam.problem() is None
    assert cam.status()["frames"] == 5 and cam.status()["outage"] is None


def test_a_failed_frame_is_reported_and_skipped() -> None:
    sink, stop, problems = Collect(), threading.Event(), Problems()
    cam = loop("door", sink, stop, lambda c: FakeSource(c.name, 3), FakeEngine(2), problems)
    cam.run()
    assert sink.frames("door") == [1, 3]
    assert problems.last == "frame 2: ValueError: bad frame"


def test_a_camera_that_cannot_be_opened_is_retried_and_counted_back() -> None:
    sink, stop, problems = Collect(), threading.Event(), Problems()
    attempts: list[int] = []

    def opener(camera: CameraConfig) -> FakeSource:
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("camera.source 'clip.avi': cannot be opened")
        return FakeSource(camera.name, 2)

    cam = loop("door", sink, stop, opener, problems=problems)
    cam.run()
    assert len(attempts) == 3 and sink.frames("door") == [1, 2]
    assert cam.status()["reconnects"] == 1
    assert problems.last == "camera.source 'clip.avi': cannot be opened"


def test_one_camera_down_leaves_the_other_running() -> None:
    sink, stop = Collect(), threading.Event()

    def never(camera: CameraConfig) -> FakeSource:
        raise OSError("gone")

    turns = Turns()
    down = loop("garage", sink, stop, never, turns=turns)
    up = loop("door", sink, stop, lambda c: FakeSource(c.name, 20), turns=turns)
    cameras = Cameras([down, up], stop)
    runner = threading.Thread(target=cameras.run)
    runner.start()
    deadline = time.monotonic() + 10
    while not up.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.frames("door") == list(range(1, 21))
    status = cameras.status()
    assert [c["name"] for c in status["cameras"]] == ["garage", "door"]
    assert status["cameras"][0]["outage"] == "gone" and status["camera"]["name"] == "garage"
    assert cameras.problem() is None  # an outage is not a stall
    stop.set()
    runner.join(10)
    assert not runner.is_alive()


def test_the_stall_names_the_camera_with_the_hung_frame() -> None:
    sink, stop = Collect(), threading.Event()
    release = threading.Event()
    turns = Turns()
    idle = loop("door", sink, stop, lambda c: FakeSource(c.name, 1000), turns=turns)
    hung = loop(
        "garage",
        sink,
        stop,
        lambda c: FakeSource(c.name, 1000),
        FakeEngine(hang=release),
        None,
        turns,
    )
    cameras = Cameras([idle, hung], stop)
    runner = threading.Thread(target=cameras.run)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not hung.watchdog.hung() and time.monotonic() < deadline:
            time.sleep(0.05)
        problem = cameras.problem()
        assert problem is not None and problem.startswith("camera garage: a frame has been")
    finally:
        stop.set()
        release.set()
        runner.join(10)


def test_turns_alternate_between_cameras_that_both_wait() -> None:
    turns = Turns()
    order: list[str] = []

    def other_is_waiting() -> None:
        deadline = time.monotonic() + 5
        while len(turns._queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)

    def camera(name: str) -> None:
        for _ in range(5):
            with turns.turn():
                order.append(name)
                if len(order) < 10:
                    other_is_waiting()

    with turns.turn():  # both queue up behind this
        a = threading.Thread(target=camera, args=("a",))
        a.start()
        while len(turns._queue) < 2:
            time.sleep(0.001)
        b = threading.Thread(target=camera, args=("b",))
        b.start()
        while len(turns._queue) < 3:
            time.sleep(0.001)
    a.join(10)
    b.join(10)
    assert order == ["a", "b"] * 5


def test_a_silent_stream_is_an_outage_of_its_camera_not_a_stall() -> None:
    """A stream that stops delivering without an error (stalled connection) must not starve the
    watchdog for every camera: after the silence it is this camera's outage."""
    sink, stop = Collect(), threading.Event()

    class Silent(FakeSource):
        def frames(self, stop: threading.Event) -> Iterator[Frame]:
            yield from super().frames(stop)
            stop.wait(30)  # connected, but nothing more arrives

    camera = CameraConfig(source="http://cam/stream", name="garage", fps_cap=15)
    cam = CameraLoop(
        camera,
        FakeEngine(),
        sink,
        Problems(),
        stop,
        turns=Turns(),
        stall_timeout=0.3,
        opener=lambda c: Silent(c.name, 2),
    )
    runner = threading.Thread(target=cam.run)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while cam.outage is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.frames("garage") == [1, 2]
        assert cam.outage is not None and cam.outage.startswith("camera garage: no frame for")
        time.sleep(0.5)  # past the stall timeout with no frame
        assert cam.problem() is None
    finally:
        stop.set()
        runner.join(10)
