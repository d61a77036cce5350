"""Presence per enrolled person, as retained MQTT state a home automation can rely on.

Owns: which enrolled people are present (last seen, wall clock), and the retained
`presence/<slug>` message of every enrolled person:

- enrolled and not seen (or expired after `mqtt.presence_timeout`): `{"present": false, ...}`,
  so Home Assistant shows `off` rather than `unknown` from the start;
- recognised: `{"present": true, "last_seen": <event ts>, "camera": <where>, ...}`; `camera` is
  where the person was last recognised (before that: the device's only camera, or null when it
  has several);
- removed from the gallery: the retained message is cleared (empty payload);
- the daemon stopping (end of file, SIGTERM): everyone present gets `present: false` before
  `offline`. A crash leaves only the broker's last will (`availability` = `offline`): a
  subscriber must read `offline` as "presence unknown", whatever `presence/<slug>` holds.

Expiry uses the wall-clock time a person was last recognised, not the event's `ts`, so it works
the same for cameras and for video files read faster than real time.
Never: decides who is recognised (the engine does) or talks to the broker itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol


class PresenceSink(Protocol):
    """The publisher's retained-presence API (`MqttPublisher` implements it)."""

    def publish_presence(self, person: str, payload: dict[str, Any]) -> None: ...

    def clear_presence(self, person: str) -> None: ...


class Presence:
    """Thread-safe: `seen` runs on the pipeline thread, `expire` on the heartbeat, `enrolled`
    on the gallery watcher and `all_absent` at shutdown."""

    def __init__(
        self,
        sink: PresenceSink,
        camera: str | None,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sink, self.camera, self.timeout, self.clock = sink, camera, timeout, clock
        self._lock = threading.Lock()
        self._enrolled: set[str] = set()
        self._present: dict[str, float] = {}  # person -> wall clock when last recognised
        self._last_seen: dict[str, float] = {}  # person -> ts of the last recognition event
        self._where: dict[str, str] = {}  # person -> camera of the last recognition event

    def _payload(self, person: str, present: bool) -> dict[str, Any]:
        last = self._last_seen.get(person)
        return {
            "person": person,
            "present": present,
            "last_seen": round(last, 3) if last is not None else None,
            "camera": self._where.get(person, self.camera),
        }

    def enrolled(self, people: Iterable[str]) -> None:
        """The gallery's people now: newcomers get `present: false`, the removed are cleared."""
        new = set(people)
        with self._lock:
            added = sorted(new - self._enrolled)
            removed = sorted(self._enrolled - new)
            self._enrolled = new
            for person in removed:
                self._present.pop(person, None)
                self._last_seen.pop(person, None)
                self._where.pop(person, None)
            absent = [self._payload(p, False) for p in added if p not in self._present]
        for payload in absent:
            self.sink.publish_presence(payload["person"], payload)
        for person in removed:
            self.sink.clear_presence(person)

    def seen(self, person: str, ts: float, camera: str | None = None) -> None:
        with self._lock:
            self._present[person] = self.clock()
            self._last_seen[person] = ts
            if camera is not None:
                self._where[person] = camera
            payload = self._payload(person, True)
        self.sink.publish_presence(person, payload)

    def expire(self) -> None:
        """`present: false` for everyone not recognised within the timeout."""
        now = self.clock()
        with self._lock:
            gone = [p for p, t in self._present.items() if now - t > self.timeout]
        self._absent(gone)

    def all_absent(self) -> None:
        """Everyone present becomes absent (the daemon is stopping)."""
        with self._lock:
            gone = list(self._present)
        self._absent(gone)

    def _absent(self, people: list[str]) -> None:
        with self._lock:
            payloads = []
            for person in people:
                if self._present.pop(person, None) is not None:
                    payloads.append(self._payload(person, False))
        for payload in payloads:
            self.sink.publish_presence(payload["person"], payload)
