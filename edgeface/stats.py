"""Rolling per-frame figures for the daemon's status: frame and face rates, per-stage latency.

Owns: the last `STATS_WINDOW` frames' completion times, face counts and stage latencies, and the
frame and event totals. Each stage's latency is over the frames that ran it: detection runs on
every frame, embedding and matching only on frames with a face to embed (most frames embed
nothing, and a median over them all would read 0). One instance per camera (its own fps) and one for the whole daemon, fed
the same results as every other sink. Never: publishes anything; the clock comes in as a
parameter.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from edgeface.pipeline.engine import FrameResult

# Per-stage latency and rate figures in `status` cover this many recent frames.
STATS_WINDOW = 300


class RollingStats:
    """Recent per-frame figures; `take` from any camera thread, read from any thread."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.frame_times: deque[float] = deque(maxlen=STATS_WINDOW)
        self.faces: deque[int] = deque(maxlen=STATS_WINDOW)
        self.stage: dict[str, deque[float]] = {
            name: deque(maxlen=STATS_WINDOW) for name in ("detect", "embed", "match", "total")
        }
        self.frames = 0
        self.events = 0

    def take(self, result: FrameResult) -> None:
        """A frame processed (its figures), or the events at the end of a camera's tracks."""
        with self._lock:
            self.events += len(result.events)
            if result.frame is None:
                return
            self.frames += 1
            self.frame_times.append(self.clock())
            self.faces.append(result.faces)
            times = result.times
            self.stage["detect"].append(times.detect)
            if result.embedded:
                self.stage["embed"].append(times.embed)
                self.stage["match"].append(times.match)
            self.stage["total"].append(times.total)

    def rates(self) -> tuple[float, float]:
        """Frames and faces per second over the window."""
        with self._lock:
            if len(self.frame_times) < 2:
                return 0.0, 0.0
            span = self.frame_times[-1] - self.frame_times[0]
            if span <= 0:
                return 0.0, 0.0
            frames = (len(self.frame_times) - 1) / span
            return frames, frames * statistics.fmean(self.faces)

    def latency_ms(self) -> dict[str, float]:
        with self._lock:
            return {
                name: round(statistics.median(values) * 1000, 2) if values else 0.0
                for name, values in self.stage.items()
            }

    def status(self) -> dict[str, Any]:
        fps, faces_per_s = self.rates()
        return {
            "fps": round(fps, 2),
            "faces_per_second": round(faces_per_s, 2),
            "latency_ms": self.latency_ms(),
            "frames": self.frames,
            "events": self.events,
        }
