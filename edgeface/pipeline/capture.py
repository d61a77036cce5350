"""Frame sources: V4L2 cameras, video files and network streams, through OpenCV.

Owns: opening a source, reading frames, pacing (the frame-rate cap), reconnecting a live
source with exponential backoff, and for live sources a reader thread that keeps only the
newest frame (older ones are dropped and counted). Never: detection or any face logic.

Video files are read on the caller's thread. By default they play in real time, like a camera:
each frame is handed out when its position in the video is due on the wall clock (frames the
caller was too slow for are skipped and counted as dropped), and its timestamp is the wall-clock
time it was handed out. With `realtime=False` (benchmarks, batch runs, tests) they are read as fast
as the caller takes them, sampled deterministically at the frame-rate cap in video time, and
stamped with the start time plus the position in the video.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2

from edgeface.config import PiCamera2Config
from edgeface.images import to_bgr
from edgeface.pipeline.picamera import is_picamera_source, picamera_opener
from edgeface.types import Frame

log = logging.getLogger(__name__)
# How long the end of a live source waits for its reader thread; a stalled stream can keep
# read() blocked for FFmpeg's own timeout, and shutdown must not wait that long.
READER_JOIN_TIMEOUT = 5.0


@dataclass
class CaptureStats:
    """Counters a status report shows; written by the capture side only."""

    frames_read: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    outage: str | None = None  # why the camera is unavailable right now


def is_live_source(source: str) -> bool:
    return (
        source.isdigit()
        or source.startswith("/dev/")
        or "://" in source
        or is_picamera_source(source)
    )


def _open(source: str) -> cv2.VideoCapture:
    target: int | str = int(source) if source.isdigit() else source
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        raise OSError(f"camera.source {source!r}: cannot be opened")
    return capture


class VideoFileSource:
    """Frames of a video file at `fps_cap`; loops if asked, else ends; paced in real time unless
    `realtime` is False (see the module docstring).

    If the file cannot be opened when `frames` (re)opens it, the iteration ends with
    `stats.outage` set to the reason: the caller tells that apart from a normal end of file.
    """

    def __init__(
        self,
        path: str,
        camera: str,
        fps_cap: float,
        loop: bool,
        realtime: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not Path(path).is_file():
            raise OSError(f"camera.source {path!r}: no such video file")
        self.path, self.camera, self.fps_cap, self.loop = path, camera, fps_cap, loop
        self.realtime, self.clock = realtime, clock
        self.stats = CaptureStats()
        self._start = clock()

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        sequence = 0
        offset = 0.0
        while not stop.is_set():
            try:
                capture = _open(self.path)
            except OSError as exc:
                # The file vanished (or became unreadable) after this source was created, e.g.
                # between two passes of a loop: end the iteration and let the caller retry with
                # backoff, instead of raising out of the daemon's pipeline loop.
                self.stats.outage = str(exc)
                return
            self.stats.outage = None
            fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
            next_due = 0.0
            index = -1
            last_t = 0.0
            while not stop.is_set():
                ok, image = capture.read()
                if not ok:
                    break
                index += 1
                t = index / fps
                last_t = t
                self.stats.frames_read += 1
                if t + 1e-6 < next_due:
                    continue
                next_due = t + 1.0 / self.fps_cap
                ts = self._start + offset + t
                if self.realtime:
                    late = self.clock() - ts
                    if late > 1.0 / self.fps_cap:  # the caller fell behind: skip, like a camera
                        self.stats.frames_dropped += 1
                        continue
                    if late < 0 and stop.wait(-late):
                        return
                    ts = self.clock()
                sequence += 1
                yield Frame(to_bgr(image), ts, sequence, self.camera)
            capture.release()
            if not self.loop:
                return
            offset += last_t + 1.0 / fps


class LiveSource:
    """A camera or stream read on its own thread; `frames` yields the newest frame only."""

    def __init__(
        self,
        source: str,
        camera: str,
        fps_cap: float,
        max_backoff: float,
        clock: Callable[[], float] = time.time,
        opener: Callable[[str], cv2.VideoCapture] = _open,
    ) -> None:
        self.source, self.camera, self.fps_cap, self.max_backoff = (
            source,
            camera,
            fps_cap,
            max_backoff,
        )
        self.clock, self.opener = clock, opener
        self.stats = CaptureStats()
        self._latest: Frame | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def _reader(self, stop: threading.Event) -> None:
        backoff = 0.5
        sequence = 0
        while not stop.is_set():
            try:
                capture = self.opener(self.source)
            except OSError as exc:
                if self.stats.outage != str(exc):
                    log.warning("%s; retrying with backoff up to %.0fs", exc, self.max_backoff)
                self.stats.outage = str(exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if self.stats.outage:
                log.info("camera %s is back after: %s", self.camera, self.stats.outage)
                self.stats.reconnects += 1
            self.stats.outage = None
            backoff = 0.5
            while not stop.is_set():
                ok, image = capture.read()
                if not ok:
                    self.stats.outage = (
                        f"camera.source {self.source!r}: stream stopped delivering frames"
                    )
                    log.warning("%s; reconnecting", self.stats.outage)
                    break
                sequence += 1
                self.stats.frames_read += 1
                with self._cond:
                    if self._latest is not None:
                        self.stats.frames_dropped += 1
                    self._latest = Frame(to_bgr(image), self.clock(), sequence, self.camera)
                    self._cond.notify()
            capture.release()

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        reader_stop = threading.Event()  # set when this generator ends, however it ends
        self._thread = threading.Thread(
            target=self._reader, args=(reader_stop,), name="capture", daemon=True
        )
        self._thread.start()
        min_interval = 1.0 / self.fps_cap
        last = 0.0
        try:
            while not stop.is_set():
                with self._cond:
                    self._cond.wait_for(
                        lambda: self._latest is not None or stop.is_set(), timeout=0.5
                    )
                    frame, self._latest = self._latest, None
                if frame is None:
                    continue
                wait = last + min_interval - self.clock()
                if wait > 0:
                    stop.wait(wait)
                last = self.clock()
                yield frame
        finally:
            # A reader still inside FFmpeg when the interpreter exits can abort the process
            # (seen as SIGABRT at SIGTERM); a live stream returns from read() within a frame.
            reader_stop.set()
            self._thread.join(timeout=READER_JOIN_TIMEOUT)


FrameSource = VideoFileSource | LiveSource


def open_source(
    source: str,
    camera: str,
    fps_cap: float,
    loop: bool,
    max_backoff: float,
    realtime: bool = True,
    picamera2: PiCamera2Config | None = None,
) -> FrameSource:
    if is_picamera_source(source):
        opener = picamera_opener(source, picamera2 or PiCamera2Config(), fps_cap)
        return LiveSource(source, camera, fps_cap, max_backoff, opener=opener)
    if is_live_source(source):
        return LiveSource(source, camera, fps_cap, max_backoff)
    return VideoFileSource(source, camera, fps_cap, loop, realtime)
