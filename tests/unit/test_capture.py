"""Capture sources: a video file that vanishes, a live source that fails and comes back."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeface.pipeline.capture import LiveSource, VideoFileSource


def _video(path: Path, frames: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 15.0, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    return path


def test_missing_file_is_an_oserror_naming_the_source(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="no such video file"):
        VideoFileSource(str(tmp_path / "nope.avi"), "door", 15.0, loop=False)


def test_file_vanishing_between_loops_ends_with_an_outage(tmp_path: Path) -> None:
    video = _video(tmp_path / "v.avi")
    source = VideoFileSource(str(video), "door", 15.0, loop=True)
    stop = threading.Event()
    seen = 0
    for _frame in source.frames(stop):
        seen += 1
        if seen == 2:
            video.unlink()  # the open capture still reads this pass; the next open fails
        assert seen < 100, "kept looping over a file that is gone"
    assert seen == 6
    assert source.stats.outage is not None and "cannot be opened" in source.stats.outage


def test_file_loops_and_clears_the_outage(tmp_path: Path) -> None:
    video = _video(tmp_path / "v.avi", frames=3)
    source = VideoFileSource(str(video), "door", 15.0, loop=True)
    stop = threading.Event()
    sequences = []
    for frame in source.frames(stop):
        sequences.append(frame.sequence)
        if len(sequences) == 7:
            stop.set()
    assert sequences == list(range(1, 8))
    assert source.stats.outage is None


class FlakyCapture:
    """Stands in for cv2.VideoCapture: `frames` good reads, then read fails."""

    def __init__(self, frames: int) -> None:
        self.left = frames

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((8, 8, 3), np.uint8)

    def release(self) -> None:
        pass


def test_live_source_reconnects_and_reports_the_outage() -> None:
    attempts: list[str] = []

    def opener(source: str) -> FlakyCapture:
        attempts.append(source)
        if len(attempts) in (2, 3):  # the camera is gone for two attempts
            raise OSError(f"camera.source {source!r}: cannot be opened")
        return FlakyCapture(frames=3)

    source = LiveSource("rtsp://cam", "door", 1000.0, max_backoff=0.05, opener=opener)  # type: ignore[arg-type]
    stop = threading.Event()
    for got, _frame in enumerate(source.frames(stop), 1):
        if len(attempts) >= 4 and got >= 2:
            stop.set()
    assert len(attempts) >= 4
    assert source.stats.reconnects >= 1
    assert source.stats.frames_read >= 4


def test_live_source_stops_its_reader_when_the_consumer_stops() -> None:
    """The reader must not outlive frames(): a reader still inside FFmpeg when the interpreter
    exits aborts the process. Holds whether the stop event is set or the loop is left early."""
    readers: list[threading.Thread] = []

    def opener(source: str) -> FlakyCapture:
        readers.append(threading.current_thread())
        return FlakyCapture(frames=10**9)

    for leave_early in (False, True):
        source = LiveSource("rtsp://cam", "door", 1000.0, 1.0, opener=opener)  # type: ignore[arg-type]
        stop = threading.Event()
        frames = source.frames(stop)
        for got, _frame in enumerate(frames, 1):
            if got >= 3:
                if leave_early:
                    break
                stop.set()
        frames.close()
        assert not readers[-1].is_alive()
        assert not stop.is_set() if leave_early else stop.is_set()
