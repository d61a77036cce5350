"""The outbox sender: durable events handed to the MQTT connection strictly in order.

Owns: one thread that hands outbox rows to paho in seq order with at most `max_inflight`
unacknowledged, deletes a row only when paho reports it delivered (PUBACK for QoS 1), and after a
reconnect sends nothing newer until what paho resends by itself is acknowledged (order). Rows whose
deletion failed (disk full) are retried: otherwise they would be sent again at the next start, a
duplicate by id, never a loss.
Never: calls into paho while holding its own lock (paho's callbacks take it), opens the
connection, or builds a payload (rows are sent byte for byte as stored).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edgeface.publish.outbox import Outbox, OutboxError

log = logging.getLogger(__name__)

# paho's `Client.publish(topic, payload, qos, retain)`.
Publish = Callable[..., mqtt.MQTTMessageInfo]


class OutboxSender:
    """Feeds `outbox` to `publish`; the publisher reports connection changes and acks to it."""

    def __init__(
        self,
        outbox: Outbox,
        publish: Publish,
        max_inflight: int,
        on_error: Callable[[str], None],
    ) -> None:
        self.outbox, self.publish, self.max_inflight = outbox, publish, max_inflight
        self.on_error = on_error
        # Guards everything below; never held while calling into paho.
        self._cond = threading.Condition()
        self._connected = False
        self._generation = 0
        self._acks: deque[tuple[int, bool, str]] = deque()
        self._wake = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def connected(self) -> None:
        """A (re)connection: paho resends what it holds first."""
        with self._cond:
            self._connected = True
            self._generation += 1
            self._notify()

    def disconnected(self) -> None:
        with self._cond:
            self._connected = False
            self._notify()

    def acked(self, mid: int, failed: bool, reason: str) -> None:
        """paho's on_publish (called with paho's lock held: only record)."""
        with self._cond:
            self._acks.append((mid, failed, reason))
            self._notify()

    def poke(self) -> None:
        """A row was appended."""
        with self._cond:
            self._notify()

    def wait_drained(self, deadline: float) -> None:
        """Until the outbox is empty or the monotonic `deadline` passes."""
        with self._cond:
            while self.outbox.depth() > 0 and (remaining := deadline - time.monotonic()) > 0:
                self._cond.wait(min(remaining, 0.1))

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _notify(self) -> None:
        self._wake = True
        self._cond.notify_all()

    def _run(self) -> None:
        inflight: dict[int, int] = {}  # paho mid -> outbox seq, owned by this thread only
        undeleted: list[int] = []
        last_handed = 0
        seen_generation = 0
        hold = False
        while True:
            with self._cond:
                if not self._wake and not self._stop:
                    # The timeout is a safety net only: every state change sets _wake.
                    self._cond.wait(1.0)
                self._wake = False
                acks = list(self._acks)
                self._acks.clear()
                connected, generation = self._connected, self._generation
                if self._stop:
                    return
            for mid, failed, reason in acks:
                seq = inflight.pop(mid, None)
                if seq is None:
                    continue  # not an event (state, reply, snapshot)
                if failed:
                    # Retrying a message the broker refuses would block every later event.
                    log.error("MQTT broker refused event row %d (%s); dropping it", seq, reason)
                undeleted.append(seq)
            undeleted = [seq for seq in undeleted if not self._ack_row(seq)]
            if generation != seen_generation:
                seen_generation = generation
                # paho resends what it holds, in order, right after the CONNACK; anything newer
                # sent now could overtake it.
                hold = bool(inflight)
            if hold and not inflight:
                hold = False
            if connected and not hold:
                last_handed = self._hand_over(inflight, last_handed)

    def _hand_over(self, inflight: dict[int, int], last_handed: int) -> int:
        """Hand the next rows to paho; returns the last seq handed over."""
        room = self.max_inflight - len(inflight)
        if room <= 0:
            return last_handed
        try:
            rows = self.outbox.peek(room, after=last_handed)
        except OutboxError as exc:
            self.on_error(str(exc))
            return last_handed
        for row in rows:
            info = self.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
            # QoS 0 is not queued by paho when the connection is gone: try again later.
            if info.rc != mqtt.MQTT_ERR_SUCCESS and (
                row.qos == 0 or info.rc != mqtt.MQTT_ERR_NO_CONN
            ):
                break
            inflight[info.mid] = row.seq
            last_handed = row.seq
        return last_handed

    def _ack_row(self, seq: int) -> bool:
        """Delete a delivered row; False if the outbox could not (try again later)."""
        try:
            self.outbox.ack(seq)
        except OutboxError as exc:
            self.on_error(str(exc))
            return False
        with self._cond:
            self._cond.notify_all()  # wait_drained waits for the depth to reach zero
        return True
