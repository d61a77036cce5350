"""The daemon's status report (retained `status`, `cmd/status`, metrics, `systemctl status`).

Owns: the report's shape, assembled from each part's own `status()`: the figures of all frames
(`stats`), each camera (`cameras`), the gallery, event delivery; and `last_error`, with the
problems that are current now (outbox, MQTT connection, a refused reload) before the last one
reported.
Never: measures anything itself or publishes (the heartbeat does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edgeface import __version__
from edgeface.gallery.live import LiveGallery
from edgeface.pipeline.cameras import Cameras
from edgeface.problems import Problems
from edgeface.publish.offline import MqttOff
from edgeface.reloader import Reloader
from edgeface.sinks import EventPublisher
from edgeface.stats import RollingStats


class StatusReport:
    """Reads the parts on every call; safe from any thread."""

    def __init__(
        self,
        device: str,
        models: str,
        stats: RollingStats,
        cameras: Cameras,
        gallery: LiveGallery,
        events: EventPublisher,
        problems: Problems,
        reloader: Reloader,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device, self.models, self.stats, self.cameras = device, models, stats, cameras
        self.gallery, self.events, self.problems, self.clock = gallery, events, problems, clock
        self.reloader = reloader
        self.started_at = clock()

    def report(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "version": __version__,
            "uptime": round(self.clock() - self.started_at, 1),
            **self.stats.status(),
            **self.cameras.status(),
            "gallery": self.gallery.status(),
            "models": self.models,
            **self.events.status(),
            "last_error": self.problems.line(
                self.events.outbox_problem,
                self.events.publisher.last_error,
                self.reloader.problem,
            ),
        }

    def command(self) -> dict[str, Any]:
        """`cmd/status`."""
        return {"ok": True, "status": self.report()}

    def line(self) -> str:
        """One line for `systemctl status`."""
        fps, _ = self.stats.rates()
        people = len(self.gallery.people)
        publisher = self.events.publisher
        mqtt = "mqtt off" if isinstance(publisher, MqttOff) else f"outbox {publisher.outbox_depth}"
        return f"{fps:.1f} fps, {people} people, {mqtt}"
