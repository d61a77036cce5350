"""Rolling per-frame figures for the daemon's status: frame and face rates, per-stage latency.

Owns: the last `STATS_WINDOW` frames' times, face counts and stage latencies, and the frame and
event totals. Each stage's latency is over the frames that ran it: detection runs on every frame,
embedding and matching only on frames with a face to embed (most frames embed nothing, and a
median over them all would read 0). Written by the pipeline thread only; read by whoever builds a status report.
Never: publishes anything or reads clocks itself (times come in as arguments).
"""

from __future__ import annotations

import statistics
from collections import deque

from edgeface.pipeline.engine import FrameResult

# Per-stage latency and rate figures in `status` cover this many recent frames.
STATS_WINDOW = 300


class RollingStats:
    """Recent per-frame figures for the status report; written by the pipeline thread only."""

    def __init__(self) -> None:
        self.frame_times: deque[float] = deque(maxlen=STATS_WINDOW)
        self.faces: deque[int] = deque(maxlen=STATS_WINDOW)
        self.stage: dict[str, deque[float]] = {
            name: deque(maxlen=STATS_WINDOW) for name in ("detect", "embed", "match", "total")
        }
        self.frames = 0
        self.events = 0

    def add(self, now: float, result: FrameResult, total: float) -> None:
        self.frames += 1
        self.frame_times.append(now)
        self.faces.append(result.faces)
        self.stage["detect"].append(result.times.detect)
        if result.embedded:
            self.stage["embed"].append(result.times.embed)
            self.stage["match"].append(result.times.match)
        self.stage["total"].append(total)

    def rates(self) -> tuple[float, float]:
        if len(self.frame_times) < 2:
            return 0.0, 0.0
        span = self.frame_times[-1] - self.frame_times[0]
        if span <= 0:
            return 0.0, 0.0
        frames = (len(self.frame_times) - 1) / span
        return frames, frames * statistics.fmean(self.faces)

    def latency_ms(self) -> dict[str, float]:
        return {
            name: round(statistics.median(values) * 1000, 2) if values else 0.0
            for name, values in self.stage.items()
        }
