"""The MQTT transport of the daemon: durable event delivery, retained state, availability.

Owns: one paho-mqtt (v2 callback API) client and the topics under `<topic_prefix>/<device_id>/`:

- `availability`        retained `online` on every (re)connect; LWT and clean stop: retained `offline`
- `events`              event JSON (Event.to_json), durable through the outbox, strictly in order
- `presence/<slug>`     retained JSON per person (cleared with an empty retained message)
- `status`              retained JSON; its `mqtt_connected` is set here when it is sent (false in
                        the last one, sent by a clean stop just before `offline`)
- `snapshot/<event id>` JPEG bytes, best effort
- `cmd/<name>`          subscribed; the bytes go to the command sink (`edgeface.commands` checks and
                        runs them), whose reply bytes go out on `cmd/result`; retained messages are
                        never handed on (one left on the broker would run again at every connect)

Delivery design: `publish_event` appends to the sqlite outbox and returns; the outbox sender
(`publish.sender`) hands rows to paho in order and deletes them when acknowledged. After a daemon
restart every remaining row is sent again with its original payload, so the event `id` is
unchanged and subscribers de-duplicate. Retained state (availability, presence, status) is kept in
memory and republished on every connect, so it converges even when a QoS 0 update was lost.

Never: raises because the broker is unreachable, writes the password to a log line, exception or
status, builds the event wire format (Event.to_json does), or interprets a command.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edgeface.commands import RESULT
from edgeface.config import MqttConfig
from edgeface.publish.client import build_client, describe_connect_error
from edgeface.publish.outbox import Outbox, OutboxError
from edgeface.publish.sender import OutboxSender
from edgeface.types import Event

log = logging.getLogger(__name__)

# Receives `cmd/<name>` requests on paho's network thread: must only queue them.
CommandSink = Callable[[str, bytes], None]

_TOPIC_UNSAFE = re.compile(r"[/#+\x00]")


def slugify(name: str) -> str:
    """A topic-safe, lowercase ASCII slug for a person's name; distinct names give distinct slugs.

    A name that already is a slug (`[a-z0-9_]`, at most 40 characters) is returned unchanged.
    Otherwise the readable part (accents stripped, anything else -> `_`) gets an 8-hex-digit hash of
    the full name, because any lossy mapping collides ("Zoë" / "Zoe", "Ann Lee" / "ann_lee").
    """
    if re.fullmatch(r"[a-z0-9_]{1,40}", name):
        return name
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    readable = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")[:40] or "person"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{readable}_{digest}"


class RetainedState:
    """Retained messages kept in memory and republished on every connect, so they converge even
    when a QoS 0 update was lost; the status gets `mqtt_connected` as it is sent.

    The lock is held across the paho call so a republish on connect cannot overtake a newer
    update from another thread.
    """

    def __init__(
        self, client: mqtt.Client, status_topic: str, connected: Callable[[], bool]
    ) -> None:
        self._client, self._status_topic, self._connected = client, status_topic, connected
        self._lock = threading.Lock()
        self._retained: dict[str, bytes] = {}
        self._status: dict[str, Any] | None = None

    def set(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._retained[topic] = payload
            if self._connected():
                self._client.publish(topic, payload, qos=0, retain=True)

    def set_status(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self._status = dict(payload)
            connected = self._connected()
            body = self._status_bytes(connected)
            self._retained[self._status_topic] = body
            if connected:
                self._client.publish(self._status_topic, body, qos=0, retain=True)

    def republish(self, availability_topic: str) -> None:
        """On connect: `online` first, then every retained message (the status as connected)."""
        with self._lock:
            self._client.publish(availability_topic, b"online", qos=1, retain=True)
            if self._status is not None:
                self._retained[self._status_topic] = self._status_bytes(True)
            for topic, payload in self._retained.items():
                self._client.publish(topic, payload, qos=0, retain=True)

    def last_status(self) -> None:
        """At a clean stop, while still connected: the status as no longer connected."""
        with self._lock:
            if self._status is not None:
                body = self._status_bytes(False)
                self._retained[self._status_topic] = body
                self._client.publish(self._status_topic, body, qos=0, retain=True)

    def _status_bytes(self, connected: bool) -> bytes:
        return json.dumps({**(self._status or {}), "mqtt_connected": connected}).encode("utf-8")


# -- the publisher ----------------------------------------------------------------------------


class MqttPublisher:
    """Publishes events and state for one device; see the module docstring for the topics."""

    def __init__(
        self,
        cfg: MqttConfig,
        device_id: str,
        state_dir: Path,
        client_id: str | None = None,
        *,
        max_inflight: int = 10,
        reconnect_min_delay: int = 1,
        reconnect_max_delay: int = 30,
    ) -> None:
        if not device_id or _TOPIC_UNSAFE.search(device_id):
            raise ValueError(f"device_id must be a non-empty topic level, got {device_id!r}")
        if not 1 <= max_inflight <= 100:
            raise ValueError(f"max_inflight must be from 1 to 100, got {max_inflight}")
        self._cfg = cfg
        self._base = f"{cfg.topic_prefix.rstrip('/')}/{device_id}"
        self.topic_availability = f"{self._base}/availability"
        self.topic_events = f"{self._base}/events"
        self.topic_status = f"{self._base}/status"
        self.topic_cmd_result = f"{self._base}/cmd/{RESULT}"
        self._cmd_prefix = f"{self._base}/cmd/"
        self._reconnect_delays = (reconnect_min_delay, reconnect_max_delay)
        self._client_id = client_id or cfg.client_id or f"edgeface-{device_id}"

        # _lock guards the connection state and the problems; never held while calling paho.
        self._lock = threading.Lock()
        self._connected = False
        self._conn_error: str | None = None
        self._outbox_error: str | None = None
        self._logged_problem: str | None = None
        self._stopping = self._started = self._stopped = False
        self.command_sink: CommandSink | None = None
        self._client = build_client(cfg, self._client_id, self.topic_availability, max_inflight)
        self._state = RetainedState(self._client, self.topic_status, lambda: self.connected)
        for name in ("connect", "connect_fail", "disconnect", "publish", "message"):
            setattr(self._client, f"on_{name}", getattr(self, f"_on_{name}"))
        self._sender: OutboxSender | None = None
        try:
            outbox = Outbox(Path(state_dir), max_rows=cfg.outbox_max)
        except OutboxError as exc:
            # The daemon keeps running and publishes live; status/last_error say why.
            self._outbox_error = str(exc)
            log.error("%s; events will be published without a durable outbox", exc)
        else:
            self._sender = OutboxSender(
                outbox, self._client.publish, max_inflight, self._note_outbox_error
            )

    # -- public API ------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; never raises because the broker is unreachable."""
        if self._started or self._stopped:
            return
        self._started = True
        self._client.reconnect_delay_set(*self._reconnect_delays)
        if self._sender is not None:
            self._sender.start()
        try:
            self._client.connect_async(
                self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive
            )
            self._client.loop_start()
        except (OSError, ValueError) as exc:
            self._note_problem(describe_connect_error(exc, self._cfg.host, self._cfg.port))

    def publish_event(self, event: Event) -> bool:
        """Queue an event durably (True) or, if the outbox is unusable, send it live (False).

        Returns only after the row is committed, so a crash afterwards cannot lose it.
        """
        payload = event.to_json().encode("utf-8")
        if self._sender is not None:
            try:
                self._sender.outbox.append(
                    self.topic_events, payload, qos=self._cfg.qos, retain=False
                )
            except OutboxError as exc:
                self._note_outbox_error(str(exc))
            else:
                if self._outbox_error is not None:
                    self._note_outbox_error(None)
                self._sender.poke()
                return True
        if self.connected:
            self._client.publish(self.topic_events, payload, qos=self._cfg.qos)
        return False

    def publish_presence(self, person: str, payload: dict[str, Any]) -> None:
        self._state.set(self.presence_topic(person), json.dumps(payload).encode("utf-8"))

    def clear_presence(self, person: str) -> None:
        # An empty retained message deletes the retained one; it stays in the republish set so a
        # clear lost with a dying connection is repeated after the reconnect.
        self._state.set(self.presence_topic(person), b"")

    def publish_status(self, payload: dict[str, Any]) -> None:
        """Retained status; `mqtt_connected` is filled in with the state it is sent in."""
        self._state.set_status(payload)

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """Retained state outside the device's topics (HA discovery); republished on every
        connect. An empty payload deletes the retained message."""
        if not topic or "#" in topic or "+" in topic:
            raise ValueError(f"not a topic to publish to: {topic!r}")
        self._state.set(topic, payload)

    def publish_snapshot(self, event_id: str, jpeg: bytes) -> bool:
        """Best effort, QoS 0, not stored: True if handed to the connection."""
        if not event_id or _TOPIC_UNSAFE.search(event_id) or len(event_id) > 128:
            raise ValueError(f"event id is not a topic level: {event_id[:40]!r}")
        if not self.connected:
            return False
        info = self._client.publish(f"{self._base}/snapshot/{event_id}", bytes(jpeg), qos=0)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def publish_reply(self, reply: bytes) -> None:
        """A command's reply on `cmd/result` (QoS 1, not stored: a reply to a peer that is gone
        is worth nothing)."""
        if self.connected:
            self._client.publish(self.topic_cmd_result, reply, qos=1)

    def presence_topic(self, person: str) -> str:
        return f"{self._base}/presence/{slugify(person)}"

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Flush the outbox for up to `flush_timeout` s, publish `offline`, close.

        The wait includes reconnecting: a broker that comes back within the timeout still gets
        everything. Rows not acknowledged by then stay in the outbox for the next start.
        """
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + max(0.0, flush_timeout)
        if self._started:
            if self._sender is not None:
                self._sender.wait_drained(deadline)
            self._stopping = True
            if self.connected:
                self._state.last_status()
                info = self._client.publish(self.topic_availability, b"offline", qos=1, retain=True)
                with contextlib.suppress(ValueError, RuntimeError):
                    info.wait_for_publish(timeout=max(0.5, min(2.0, deadline - time.monotonic())))
            self._client.disconnect()
            self._client.loop_stop()
            if self._sender is not None:
                self._sender.stop()
        if self._sender is not None:
            self._sender.outbox.close()

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    @property
    def outbox_depth(self) -> int:
        return self._sender.outbox.depth() if self._sender is not None else 0

    @property
    def outbox_dropped(self) -> int:
        with contextlib.suppress(OutboxError):
            return self._sender.outbox.dropped_total if self._sender is not None else 0
        return 0

    @property
    def last_error(self) -> str | None:
        """The current problem (connection and/or outbox), None when healthy. Never secrets."""
        with self._lock:
            parts = [p for p in (self._conn_error, self._outbox_error) if p]
        return "; ".join(parts) or None

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _flags: Any, reason_code: Any, _props: Any
    ) -> None:
        if reason_code.is_failure:
            self._note_problem(f"broker refused the connection: {reason_code}")
            return
        with self._lock:
            self._connected = True
            self._conn_error = self._logged_problem = None
        if self._sender is not None:
            self._sender.connected()
        log.info("MQTT connected to %s:%d as %s", self._cfg.host, self._cfg.port, self._client_id)
        client.subscribe(f"{self._cmd_prefix}+", qos=1)
        self._state.republish(self.topic_availability)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho calls this from inside its `except OSError` block, so the cause is still at hand.
        exc = sys.exc_info()[1]
        self._note_problem(describe_connect_error(exc, self._cfg.host, self._cfg.port))

    def _on_disconnect(
        self, _client: mqtt.Client, _u: Any, _flags: Any, reason_code: Any, _props: Any
    ) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
        if self._sender is not None:
            self._sender.disconnected()
        if was_connected and not self._stopping:
            self._note_problem(
                f"connection to {self._cfg.host}:{self._cfg.port} lost ({reason_code})"
            )

    def _on_publish(
        self, _client: mqtt.Client, _u: Any, mid: int, reason_code: Any, _props: Any
    ) -> None:
        if self._sender is not None:
            self._sender.acked(mid, bool(reason_code.is_failure), str(reason_code))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if topic == self.topic_cmd_result or not topic.startswith(self._cmd_prefix):
            return
        if msg.retain:
            # Left on the broker by a client that published with retain: not a request now.
            log.warning("MQTT command on %s ignored: retained messages are not commands", topic)
            return
        sink = self.command_sink
        if sink is not None:
            sink(topic[len(self._cmd_prefix) :], bytes(msg.payload))

    # -- state and problems ----------------------------------------------------------------

    def _note_problem(self, reason: str) -> None:
        """Record a connection problem; log it only when it differs from the last one logged."""
        with self._lock:
            self._conn_error = reason
            repeat = reason == self._logged_problem
            self._logged_problem = reason
        if not repeat:
            log.warning("MQTT %s; retrying in the background", reason)

    def _note_outbox_error(self, reason: str | None) -> None:
        with self._lock:
            previous, self._outbox_error = self._outbox_error, reason
        if reason and reason != previous:
            log.error("%s; publishing events live until it recovers", reason)
        elif reason is None and previous:
            log.info("MQTT outbox writable again")
