"""The MQTT side of the daemon: durable event delivery, retained state, availability and commands.

Owns: one paho-mqtt (v2 callback API) client and the topics under `<topic_prefix>/<device_id>/`:

- `availability`        retained `online` on every (re)connect; LWT and clean stop: retained `offline`
- `events`              event JSON (Event.to_json), durable through the outbox, strictly in order
- `presence/<slug>`     retained JSON per person (cleared with an empty retained message)
- `status`              retained JSON; its `mqtt_connected` is set here when it is sent (false in
                        the last one, sent by a clean stop just before `offline`)
- `snapshot/<event id>` JPEG bytes, best effort
- `cmd/<name>`          subscribed; replies on `cmd/result` (`ok` false with an `error` for a
                        refused command; the request's `request_id` echoed as sent, any JSON
                        value); retained messages are never executed (a command left retained on
                        the broker would run again at every connect)

Delivery design: `publish_event` appends to the sqlite outbox and returns; one sender thread hands
rows to paho in seq order with at most `max_inflight` unacknowledged, and deletes a row only when
paho reports it delivered (PUBACK for QoS 1). Within a process paho itself resends unacknowledged
messages after a reconnect, so the sender sends nothing newer until those are acknowledged (order);
after a daemon restart every remaining row is sent again with its original payload, so the event
`id` is unchanged and subscribers de-duplicate. Retained state (availability, presence, status) is
kept in memory and republished on every connect, so it converges even when a QoS 0 update was lost.

Never: raises because the broker is unreachable, writes the password to a log line, exception or
status, builds the event wire format (Event.to_json does), or runs the command handler on
unvalidated input or on paho's network thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import re
import socket
import ssl
import sys
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edgeface.config import ConfigError, MqttConfig, check_tls_files, read_password
from edgeface.publish.outbox import Outbox, OutboxError
from edgeface.types import Event

log = logging.getLogger(__name__)

CommandHandler = Callable[[str, bytes], dict[str, Any]]

COMMAND_NAME = re.compile(r"[a-z_]{1,32}")
MAX_COMMAND_BYTES = 64 * 1024
MAX_COMMAND_DEPTH = 8
# Commands wait here for the worker thread; beyond this they are refused with "busy" rather than
# queued without bound by whoever can publish to our topic.
COMMAND_QUEUE_SIZE = 32
_RESULT = "result"
_MAX_ERROR_CHARS = 200
_TOPIC_UNSAFE = re.compile(r"[/#+\x00]")


# -- helpers ----------------------------------------------------------------------------------


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


def describe_connect_error(exc: BaseException | None, host: str, port: int) -> str:
    """A one-line reason for a failed connection attempt, for logs and `last_error`."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {host}:{port} refused (is the broker running?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve broker host {host!r} ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return f"connection to {host}:{port} timed out"
    if isinstance(exc, OSError):
        return f"cannot connect to {host}:{port} ({exc.strerror or exc})"
    return f"cannot connect to {host}:{port}"


def _json_depth_exceeds(text: str, limit: int) -> bool:
    """True if arrays/objects nest deeper than `limit`; checked before json.loads so a hostile
    payload cannot make the parser recurse thousands of levels."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class CommandError(Exception):
    """A command was refused; the message goes into the error reply as-is."""


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
        self.topic_cmd_result = f"{self._base}/cmd/{_RESULT}"
        self._cmd_prefix = f"{self._base}/cmd/"
        self._max_inflight = max_inflight
        self._reconnect_delays = (reconnect_min_delay, reconnect_max_delay)
        self._client_id = client_id or cfg.client_id or f"edgeface-{device_id}"

        # _cond guards the connection state, the ack queue and the sender's wake-up flag. It is
        # never held while calling into paho, whose callbacks take it (deadlock otherwise).
        self._cond = threading.Condition()
        self._connected = False
        self._connect_generation = 0
        self._acks: deque[tuple[int, bool, str]] = deque()
        self._wake = False
        self._sender_stop = False
        self._conn_error: str | None = None
        self._outbox_error: str | None = None
        self._logged_problem: str | None = None
        self._stopping = False
        self._started = False
        self._stopped = False

        # _state_lock orders retained-state publishes: held across the paho call so a republish
        # on connect cannot overtake a newer update from the daemon thread.
        self._state_lock = threading.Lock()
        self._retained: dict[str, bytes] = {}
        self._status: dict[str, Any] | None = None

        self._handler: CommandHandler | None = None
        self._commands: frozenset[str] | None = None
        self._command_queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(COMMAND_QUEUE_SIZE)

        self._outbox: Outbox | None
        try:
            self._outbox = Outbox(Path(state_dir), max_rows=cfg.outbox_max)
        except OutboxError as exc:
            # The daemon keeps running and publishes live; status/last_error say why.
            self._outbox = None
            self._outbox_error = str(exc)
            log.error("%s; events will be published without a durable outbox", exc)

        self._client = self._build_client()
        self._sender = threading.Thread(target=self._run_sender, name="mqtt-sender", daemon=True)
        self._worker = threading.Thread(
            target=self._run_commands, name="mqtt-commands", daemon=True
        )

    # -- construction ----------------------------------------------------------------------

    def _build_client(self) -> mqtt.Client:
        cfg = self._cfg
        v5 = cfg.protocol == "5"
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            # Unacknowledged events live in the outbox, not in a broker session.
            clean_session=None if v5 else True,
        )
        # paho's own messages are diagnostics (some at ERROR for a routine disconnect); the
        # user-facing story is our one line per state change, so they all go to DEBUG.
        paho_log = logging.getLogger(f"{__name__}.paho")
        client.on_log = lambda _c, _u, _level, text: paho_log.debug("%s", text)
        client.will_set(self.topic_availability, b"offline", qos=1, retain=True)
        password = read_password(cfg)
        if password is not None and not cfg.username:
            raise ConfigError("mqtt.username: required when a password is configured")
        if cfg.username:
            client.username_pw_set(cfg.username, password)
        if cfg.tls.enabled:
            self._configure_tls(client)
        client.max_inflight_messages_set(self._max_inflight + 20)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _configure_tls(self, client: mqtt.Client) -> None:
        tls = self._cfg.tls
        check_tls_files(tls)
        try:
            client.tls_set(
                ca_certs=tls.ca_file,  # None: the system's trusted CAs
                certfile=tls.cert_file,
                keyfile=tls.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(f"mqtt.tls: cannot load certificates ({exc})") from exc
        # Like mosquitto_pub --insecure: skips the host name check only; the chain is still verified.
        client.tls_insecure_set(tls.insecure)

    # -- public API ------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; never raises because the broker is unreachable."""
        if self._started or self._stopped:
            return
        self._started = True
        self._client.reconnect_delay_set(*self._reconnect_delays)
        self._sender.start()
        self._worker.start()
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
        if self._outbox is not None:
            try:
                self._outbox.append(self.topic_events, payload, qos=self._cfg.qos, retain=False)
            except OutboxError as exc:
                self._note_outbox_error(str(exc))
            else:
                if self._outbox_error is not None:
                    self._note_outbox_error(None)
                self._poke()
                return True
        if self.connected:
            self._client.publish(self.topic_events, payload, qos=self._cfg.qos)
        return False

    def publish_presence(self, person: str, payload: dict[str, Any]) -> None:
        self._set_retained(self.presence_topic(person), json.dumps(payload).encode("utf-8"))

    def clear_presence(self, person: str) -> None:
        # An empty retained message deletes the retained one; it stays in the republish set so a
        # clear lost with a dying connection is repeated after the reconnect.
        self._set_retained(self.presence_topic(person), b"")

    def publish_status(self, payload: dict[str, Any]) -> None:
        """Retained status; `mqtt_connected` is filled in with the state it is sent in."""
        with self._state_lock:
            self._status = dict(payload)
            connected = self.connected
            body = self._status_bytes(connected)
            self._retained[self.topic_status] = body
            if connected:
                self._client.publish(self.topic_status, body, qos=0, retain=True)

    def _status_bytes(self, connected: bool) -> bytes:
        return json.dumps({**(self._status or {}), "mqtt_connected": connected}).encode("utf-8")

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """Retained state outside the device's topics (HA discovery); republished on every
        connect. An empty payload deletes the retained message."""
        if not topic or "#" in topic or "+" in topic:
            raise ValueError(f"not a topic to publish to: {topic!r}")
        self._set_retained(topic, payload)

    def publish_snapshot(self, event_id: str, jpeg: bytes) -> bool:
        """Best effort, QoS 0, not stored: True if handed to the connection."""
        if not event_id or _TOPIC_UNSAFE.search(event_id) or len(event_id) > 128:
            raise ValueError(f"event id is not a topic level: {event_id[:40]!r}")
        if not self.connected:
            return False
        info = self._client.publish(f"{self._base}/snapshot/{event_id}", bytes(jpeg), qos=0)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def set_command_handler(
        self, fn: CommandHandler | None, commands: Collection[str] | None = None
    ) -> None:
        """Route validated `cmd/<name>` messages to `fn(name, payload) -> reply dict`.

        `commands`, if given, is the set of names `fn` understands; others are refused here.
        The handler runs on a worker thread, one command at a time.
        """
        self._commands = frozenset(commands) if commands is not None else None
        self._handler = fn

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
            with self._cond:
                while self.outbox_depth > 0 and (remaining := deadline - time.monotonic()) > 0:
                    self._cond.wait(min(remaining, 0.1))
            self._stopping = True
            if self.connected:
                with self._state_lock:  # the last status: no longer connected once it is read
                    if self._status is not None:
                        body = self._status_bytes(False)
                        self._retained[self.topic_status] = body
                        self._client.publish(self.topic_status, body, qos=0, retain=True)
                info = self._client.publish(self.topic_availability, b"offline", qos=1, retain=True)
                with contextlib.suppress(ValueError, RuntimeError):
                    info.wait_for_publish(timeout=max(0.5, min(2.0, deadline - time.monotonic())))
            self._client.disconnect()
            self._client.loop_stop()
            with self._cond:
                self._sender_stop = True
                self._cond.notify_all()
            self._sender.join(timeout=5)
            with contextlib.suppress(queue.Full):
                self._command_queue.put_nowait(None)
            self._worker.join(timeout=5)
        if self._outbox is not None:
            self._outbox.close()

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._connected

    @property
    def outbox_depth(self) -> int:
        return self._outbox.depth() if self._outbox is not None else 0

    @property
    def outbox_dropped(self) -> int:
        if self._outbox is None:
            return 0
        try:
            return self._outbox.dropped_total
        except OutboxError:
            return 0

    @property
    def last_error(self) -> str | None:
        """The current problem (connection and/or outbox), None when healthy. Never secrets."""
        with self._cond:
            parts = [p for p in (self._conn_error, self._outbox_error) if p]
        return "; ".join(parts) or None

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason_code: Any,
        _properties: Any,
    ) -> None:
        if reason_code.is_failure:
            self._note_problem(f"broker refused the connection: {reason_code}")
            return
        with self._cond:
            self._connected = True
            self._connect_generation += 1
            self._conn_error = None
            self._logged_problem = None
            self._wake = True
            self._cond.notify_all()
        log.info("MQTT connected to %s:%d as %s", self._cfg.host, self._cfg.port, self._client_id)
        client.subscribe(f"{self._cmd_prefix}+", qos=1)
        with self._state_lock:
            client.publish(self.topic_availability, b"online", qos=1, retain=True)
            if self._status is not None:
                self._retained[self.topic_status] = self._status_bytes(True)
            for topic, payload in self._retained.items():
                client.publish(topic, payload, qos=0, retain=True)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho calls this from inside its `except OSError` block, so the cause is still at hand.
        exc = sys.exc_info()[1]
        self._note_problem(describe_connect_error(exc, self._cfg.host, self._cfg.port))

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason_code: Any,
        _properties: Any,
    ) -> None:
        with self._cond:
            was_connected = self._connected
            self._connected = False
            self._cond.notify_all()
        if was_connected and not self._stopping:
            self._note_problem(
                f"connection to {self._cfg.host}:{self._cfg.port} lost ({reason_code})"
            )

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason_code: Any, _properties: Any
    ) -> None:
        # Called with paho's message lock held: only record, the sender thread does the rest.
        with self._cond:
            self._acks.append((mid, bool(reason_code.is_failure), str(reason_code)))
            self._wake = True
            self._cond.notify_all()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if topic == self.topic_cmd_result or not topic.startswith(self._cmd_prefix):
            return
        if msg.retain:
            # Left on the broker by a client that published with retain: not a request now.
            log.warning("MQTT command on %s ignored: retained messages are not commands", topic)
            return
        try:
            self._command_queue.put_nowait((topic[len(self._cmd_prefix) :], bytes(msg.payload)))
        except queue.Full:
            name = topic[len(self._cmd_prefix) :][:40]
            log.warning("MQTT command %r refused: too many commands waiting", name)
            self._reply({"ok": False, "command": name, "error": "busy: too many commands waiting"})

    # -- sender thread ---------------------------------------------------------------------

    def _run_sender(self) -> None:
        inflight: dict[int, int] = {}  # paho mid -> outbox seq, owned by this thread only
        # Delivered rows whose deletion failed (disk full): retried, or they would be sent
        # again at the next start (a duplicate by id, never a loss).
        undeleted: list[int] = []
        last_handed = 0
        seen_generation = 0
        hold = False
        while True:
            with self._cond:
                if not self._wake and not self._sender_stop:
                    # The timeout is a safety net only: every state change sets _wake.
                    self._cond.wait(1.0)
                self._wake = False
                acks = list(self._acks)
                self._acks.clear()
                connected = self._connected
                generation = self._connect_generation
                if self._sender_stop:
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
            if not connected or hold or self._outbox is None:
                continue
            room = self._max_inflight - len(inflight)
            if room <= 0:
                continue
            try:
                rows = self._outbox.peek(room, after=last_handed)
            except OutboxError as exc:
                self._note_outbox_error(str(exc))
                continue
            for row in rows:
                info = self._client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
                # QoS 0 is not queued by paho when the connection is gone: try again later.
                if info.rc != mqtt.MQTT_ERR_SUCCESS and (
                    row.qos == 0 or info.rc != mqtt.MQTT_ERR_NO_CONN
                ):
                    break
                inflight[info.mid] = row.seq
                last_handed = row.seq

    def _ack_row(self, seq: int) -> bool:
        """Delete a delivered row; False if the outbox could not (try again later)."""
        if self._outbox is None:
            return True
        try:
            self._outbox.ack(seq)
        except OutboxError as exc:
            self._note_outbox_error(str(exc))
            return False
        with self._cond:
            self._cond.notify_all()  # stop() waits for the depth to reach zero
        return True

    def _poke(self) -> None:
        with self._cond:
            self._wake = True
            self._cond.notify_all()

    # -- commands (worker thread) ----------------------------------------------------------

    def _run_commands(self) -> None:
        while True:
            item = self._command_queue.get()
            if item is None:
                return
            name, payload = item
            self._reply(self._execute(name, payload))

    def _execute(self, name: str, payload: bytes) -> dict[str, Any]:
        shown = name if COMMAND_NAME.fullmatch(name) else name[:40]
        reply: dict[str, Any] = {"ok": False, "command": shown}
        try:
            request = self._validate_command(name, payload)
            if "request_id" in request:  # as sent, whatever it is: the caller matches on it
                reply["request_id"] = request["request_id"]
            handler = self._handler
            if handler is None:
                raise CommandError("unknown command")
            try:
                result = handler(name, payload)
            except Exception as exc:  # the handler is the daemon's code: report, keep running
                raise CommandError(f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]) from exc
            if not isinstance(result, dict):
                raise CommandError(f"handler returned {type(result).__name__}, not an object")
            try:
                json.dumps(result)
            except (TypeError, ValueError) as exc:
                raise CommandError(
                    f"handler result is not JSON ({exc})"[:_MAX_ERROR_CHARS]
                ) from exc
        except CommandError as exc:
            reply["error"] = str(exc)
            log.warning("MQTT command %r refused: %s", shown, reply["error"])
            return reply
        # The handler's own verdict is the reply's: a refused command is not `ok` at the top.
        reply.update(ok=result.get("ok", True) is not False, result=result)
        if not reply["ok"] and "error" in result:
            reply["error"] = str(result["error"])[:_MAX_ERROR_CHARS]
        return reply

    def _validate_command(self, name: str, payload: bytes) -> dict[str, Any]:
        if len(payload) > MAX_COMMAND_BYTES:
            raise CommandError(f"payload too large ({len(payload)} bytes, max {MAX_COMMAND_BYTES})")
        if not COMMAND_NAME.fullmatch(name) or name == _RESULT:
            raise CommandError("invalid command name (expected [a-z_]{1,32})")
        if self._commands is not None and name not in self._commands:
            raise CommandError("unknown command")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CommandError("payload is not UTF-8") from exc
        if not text.strip():
            return {}
        if _json_depth_exceeds(text, MAX_COMMAND_DEPTH):
            raise CommandError(f"JSON nested deeper than {MAX_COMMAND_DEPTH} levels")
        try:
            request = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise CommandError(f"malformed JSON ({exc})"[:_MAX_ERROR_CHARS]) from exc
        if not isinstance(request, dict):
            raise CommandError(f"payload must be a JSON object, got {type(request).__name__}")
        return request

    def _reply(self, reply: dict[str, Any]) -> None:
        if self.connected:
            self._client.publish(self.topic_cmd_result, json.dumps(reply).encode("utf-8"), qos=1)

    # -- state and problems ----------------------------------------------------------------

    def _set_retained(self, topic: str, payload: bytes) -> None:
        with self._state_lock:
            self._retained[topic] = payload
            if self.connected:
                self._client.publish(topic, payload, qos=0, retain=True)

    def _note_problem(self, reason: str) -> None:
        """Record a connection problem; log it only when it differs from the last one logged."""
        with self._cond:
            self._conn_error = reason
            repeat = reason == self._logged_problem
            self._logged_problem = reason
        if not repeat:
            log.warning("MQTT %s; retrying in the background", reason)

    def _note_outbox_error(self, reason: str | None) -> None:
        with self._cond:
            previous, self._outbox_error = self._outbox_error, reason
        if reason and reason != previous:
            log.error("%s; publishing events live until it recovers", reason)
        elif reason is None and previous:
            log.info("MQTT outbox writable again")
