"""The picamera2 source against a fake `picamera2` module injected through sys.modules.

No Raspberry Pi camera here: the fake follows picamera2's documented API (Picamera2(camera_num),
create_video_configuration(main={"size", "format"}, controls={"FrameRate"}, sensor=),
configure, start, capture_array("main"), stop, close) and records how it was called. What is
tested: the configuration passed, newest-frame-only delivery, reconnecting after a failed
capture or a camera that cannot be opened, and the one-line error when picamera2 is missing.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

from edgeface.config import PiCamera2Config, load_config, parse_config
from edgeface.errors import EdgefaceError
from edgeface.pipeline.capture import LiveSource, is_live_source, open_source

DEADLINE = 10.0


class FakeCamera:
    """Records calls; `capture_array` paces frames like a camera and numbers them."""

    instances: ClassVar[list[FakeCamera]] = []
    open_failures = 0  # the next N constructions raise, as a busy or unplugged camera does
    fail_next_capture = threading.Event()

    def __init__(self, camera_num: int = 0) -> None:
        if FakeCamera.open_failures:
            FakeCamera.open_failures -= 1
            raise RuntimeError("Failed to acquire camera: Device or resource busy")
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.config: dict[str, Any] | None = None
        self.frames = 0
        self.started = False
        FakeCamera.instances.append(self)

    def create_video_configuration(
        self,
        main: dict[str, Any] | None = None,
        controls: dict[str, Any] | None = None,
        sensor: dict[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        return {"main": main, "controls": controls, "sensor": sensor}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")
        self.started = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert self.started and name == "main"
        time.sleep(0.005)  # a camera delivers at its frame rate, not in a busy loop
        if FakeCamera.fail_next_capture.is_set():
            FakeCamera.fail_next_capture.clear()
            raise RuntimeError("Camera frontend has timed out!")
        assert self.config is not None
        width, height = self.config["main"]["size"]
        self.frames += 1
        frame = np.zeros((height, width, 3), np.uint8)
        frame[0, 0, 0] = self.frames % 256  # which frame this is
        return frame

    def stop(self) -> None:
        self.calls.append("stop")
        self.started = False

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakeCamera]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakeCamera  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakeCamera.instances = []
    FakeCamera.open_failures = 0
    FakeCamera.fail_next_capture.clear()
    return FakeCamera


def take(source: LiveSource, count: int, stop: threading.Event) -> Iterator[Any]:
    deadline = time.monotonic() + DEADLINE
    for n, frame in enumerate(source.frames(stop), 1):
        yield frame
        if n >= count or time.monotonic() > deadline:
            return


def test_stream_size_format_frame_rate_and_sensor_mode_come_from_the_config(fake_picamera2):
    settings = PiCamera2Config(size=(640, 480), frame_rate=10.0, sensor_size=(2304, 1296))
    source = open_source("picamera2:1", "door", 30.0, False, 1.0, picamera2=settings)
    assert isinstance(source, LiveSource)
    frames = list(take(source, 2, threading.Event()))
    camera = fake_picamera2.instances[0]
    assert camera.camera_num == 1
    assert camera.config == {
        "main": {"size": (640, 480), "format": "RGB888"},
        "controls": {"FrameRate": 10.0},
        "sensor": {"output_size": (2304, 1296)},
    }
    assert [f.image.shape for f in frames] == [(480, 640, 3)] * 2
    assert {f.camera for f in frames} == {"door"}
    assert camera.calls[-2:] == ["stop", "close"], "the camera is released when frames end"


def test_frame_rate_defaults_to_fps_cap_and_libcamera_picks_the_sensor_mode(fake_picamera2):
    source = open_source("picamera2:0", "cam", 12.0, False, 1.0, picamera2=PiCamera2Config())
    list(take(source, 1, threading.Event()))
    config = fake_picamera2.instances[0].config
    assert config["controls"] == {"FrameRate": 12.0}
    assert config["sensor"] is None
    assert config["main"]["size"] == (1280, 720)


def test_only_the_newest_frame_is_delivered_to_a_slow_consumer(fake_picamera2):
    source = open_source("picamera2:0", "cam", 240.0, False, 1.0)
    stop = threading.Event()
    seen = []
    for frame in take(source, 3, stop):
        seen.append(int(frame.image[0, 0, 0]))
        deadline = time.monotonic() + DEADLINE  # let the camera deliver several frames meanwhile
        while fake_picamera2.instances[0].frames < seen[-1] + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert all(b - a >= 3 for a, b in itertools.pairwise(seen)), seen
    assert source.stats.frames_dropped >= 4


def test_a_failed_capture_reopens_the_camera(fake_picamera2):
    source = open_source("picamera2:0", "cam", 240.0, False, 0.1)
    stop = threading.Event()
    frames = source.frames(stop)
    next(frames)
    fake_picamera2.fail_next_capture.set()
    deadline = time.monotonic() + DEADLINE
    while len(fake_picamera2.instances) < 2 and time.monotonic() < deadline:
        next(frames)
    assert len(fake_picamera2.instances) == 2, "a new camera was opened"
    assert fake_picamera2.instances[0].calls[-2:] == ["stop", "close"]
    while source.stats.reconnects < 1 and time.monotonic() < deadline:
        next(frames)
    assert source.stats.reconnects == 1
    frames.close()


def test_a_busy_camera_is_retried_with_backoff(fake_picamera2):
    fake_picamera2.open_failures = 2
    source = open_source("picamera2:0", "cam", 30.0, False, 0.1)
    frames = list(take(source, 1, threading.Event()))
    assert len(frames) == 1
    assert source.stats.reconnects == 1
    assert source.stats.outage is None


def test_without_picamera2_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(EdgefaceError) as exc:
        open_source("picamera2:0", "cam", 15.0, False, 1.0)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("camera.source 'picamera2:0': picamera2 is not installed")
    assert "python3-picamera2" in message and "--system-site-packages" in message


def test_a_malformed_camera_number_is_refused(fake_picamera2):
    with pytest.raises(EdgefaceError, match="expected picamera2:N"):
        open_source("picamera2:front", "cam", 15.0, False, 1.0)


def test_config_keeps_the_source_and_reads_the_picamera2_keys(tmp_path):
    path = tmp_path / "edgeface.yaml"
    path.write_text(
        "camera:\n  source: picamera2:0\n"
        "  picamera2: {size: [640, 480], frame_rate: 10, sensor_size: [2304, 1296]}\n"
    )
    cfg = load_config(path)
    assert cfg.camera.source == "picamera2:0", "not resolved as a file next to the config"
    assert is_live_source(cfg.camera.source)
    assert cfg.camera.picamera2 == PiCamera2Config((640, 480), 10.0, (2304, 1296))
    with pytest.raises(EdgefaceError, match=r"camera\.picamera2\.size"):
        parse_config({"camera": {"picamera2": {"size": [640]}}})
