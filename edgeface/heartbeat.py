"""The heartbeat thread: what must happen on time whether or not frames flow.

Owns: feeding the systemd watchdog while no camera stalls (`WatchdogFeeder`, asked every few
seconds, at most half of WatchdogSec), presence expiry on the same tick, and every
`mqtt.status_interval` the status (retained MQTT and metrics), the expiry of unknown visitors
and the `systemctl status` line. Never: processes frames or decides what is healthy (the
cameras' watchdogs do).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from edgeface.systemd import Notifier, WatchdogFeeder

# Longest pause between two watchdog checks.
MAX_TICK = 5.0


class Heartbeat:
    """`run(stop)` on its own thread; every callable comes from the part that owns the work."""

    def __init__(
        self,
        notifier: Notifier,
        stalled: Callable[[], str | None],
        status_interval: float,
        every_tick: Sequence[Callable[[], object]],
        every_status: Sequence[Callable[[float], object]],
    ) -> None:
        self.notifier, self.stalled, self.status_interval = notifier, stalled, status_interval
        self.every_tick, self.every_status = list(every_tick), list(every_status)
        self.feeder = WatchdogFeeder(notifier)

    def run(self, stop: threading.Event) -> None:
        interval = min(
            self.notifier.watchdog_interval() or MAX_TICK, MAX_TICK, self.status_interval
        )
        next_status = time.time() + self.status_interval  # one was published at READY
        while not stop.wait(interval):
            now = time.time()
            self.feeder.tick(self.stalled())
            for task in self.every_tick:
                task()
            if now >= next_status - 0.01:  # (a wait may return a hair early)
                next_status += self.status_interval
                if next_status <= now:  # fell behind (a suspended machine): no burst
                    next_status = now + self.status_interval
                for status_task in self.every_status:
                    status_task(now)
