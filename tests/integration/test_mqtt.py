"""MqttPublisher against a real, private mosquitto: order, outages, restarts, LWT, commands, auth."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from broker import Mosquitto, MqttRecorder

from edgeface.commands import CommandWorker
from edgeface.config import MqttConfig
from edgeface.publish.mqtt import MqttPublisher, slugify
from edgeface.publish.schema import validate_event
from edgeface.types import Box, Event, RunnerUp

DEVICE = "dev1"
PREFIX = "edgetest"
BASE = f"{PREFIX}/{DEVICE}"
EVENTS = f"{BASE}/events"
AVAILABILITY = f"{BASE}/availability"
CMD_RESULT = f"{BASE}/cmd/result"

PublisherFactory = Callable[..., MqttPublisher]


def make_event(i: int, prefix: str = "ev") -> Event:
    kind = ("recognized", "unknown", "left")[i % 3]
    return Event(
        id=f"{prefix}-{i:05d}",
        type=kind,  # type: ignore[arg-type]
        track_id=i,
        person=None if kind == "unknown" else f"Person {i % 4}",
        score=0.5 + (i % 5) / 10,
        runner_up=RunnerUp("Other", 0.3) if i % 2 else None,
        box=Box(10.4, 20.6, 30, 40),
        camera="cam",
        device=DEVICE,
        ts=1_700_000_000.0 + i,
        model="facenet-test",
        duration=2.5 if kind == "left" else None,
    )


def make_cfg(broker: Mosquitto, **overrides: Any) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port, topic_prefix=PREFIX, **overrides)


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def event_ids(rec: MqttRecorder) -> list[str]:
    return [json.loads(p)["id"] for p in rec.payloads(EVENTS)]


def first_seen(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


@pytest.fixture
def publisher_factory(tmp_path: Path) -> Iterator[PublisherFactory]:
    made: list[MqttPublisher] = []

    def make(
        cfg: MqttConfig, state_dir: Path | None = None, start: bool = True, **kw: Any
    ) -> MqttPublisher:
        kw.setdefault("reconnect_min_delay", 1)
        kw.setdefault("reconnect_max_delay", 1)
        pub = MqttPublisher(cfg, DEVICE, state_dir or tmp_path / "state", **kw)
        made.append(pub)
        if start:
            pub.start()
        return pub

    yield make
    for pub in made:
        pub.stop(flush_timeout=0)


def test_events_delivered_in_order_and_valid(
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
) -> None:
    rec = recorder_factory(mosquitto, f"{BASE}/#")
    pub = publisher_factory(make_cfg(mosquitto))
    events = [make_event(i) for i in range(60)]
    for ev in events:
        assert pub.publish_event(ev) is True
    rec.wait_for_count(EVENTS, len(events))
    assert event_ids(rec) == [ev.id for ev in events]
    for payload in rec.payloads(EVENTS):
        validate_event(json.loads(payload))
    assert json.loads(rec.payloads(EVENTS)[0]) == events[0].to_dict()
    assert all(m.qos == 1 for m in rec.on(EVENTS))
    wait_until(lambda: pub.outbox_depth == 0, what="outbox drained")
    assert pub.connected and pub.last_error is None
    online = rec.on(AVAILABILITY)
    assert online and online[-1].payload == b"online"


def _restart_cycles(
    broker: Mosquitto,
    rec: MqttRecorder,
    pub: MqttPublisher,
    cycles: int,
    per_phase: int = 5,
) -> list[str]:
    sent: list[str] = []
    counter = 0

    def burst() -> None:
        nonlocal counter
        for _ in range(per_phase):
            ev = make_event(counter)
            counter += 1
            pub.publish_event(ev)
            sent.append(ev.id)

    for _ in range(cycles):
        burst()  # while connected: some of these are in flight when the broker goes
        broker.stop()
        burst()  # while down: only the outbox has them
        wait_until(lambda: not pub.connected, what="publisher noticed the outage")
        broker.start()
        burst()  # possibly before the reconnect
        wait_until(lambda: pub.connected, timeout=15, what="publisher reconnected")
    rec.wait_until(lambda: set(event_ids(rec)) >= set(sent), timeout=20, what="all events")
    return sent


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_broker_restarts_lose_nothing_and_keep_order(
    protocol: str,
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
) -> None:
    cycles = 20 if os.environ.get("EDGEFACE_SOAK") == "1" else 3
    rec = recorder_factory(mosquitto, EVENTS)
    pub = publisher_factory(make_cfg(mosquitto, protocol=protocol))
    wait_until(lambda: pub.connected, what="connected")
    sent = _restart_cycles(mosquitto, rec, pub, cycles)
    ids = event_ids(rec)
    # Exactly once by id: every event arrived, nothing foreign arrived, and QoS 1 redeliveries
    # (a PUBACK lost with the broker) carry the same id so a subscriber can drop them.
    assert set(ids) == set(sent)
    assert first_seen(ids) == sent
    assert len(ids) - len(set(ids)) <= 2 * cycles * 5
    wait_until(lambda: pub.outbox_depth == 0, what="outbox drained")


def test_broker_unreachable_at_start_then_delivered(
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = recorder_factory(mosquitto, EVENTS)  # its persistent session outlives the outage
    mosquitto.stop()
    caplog.set_level(logging.WARNING, logger="edgeface.publish.mqtt")
    pub = publisher_factory(make_cfg(mosquitto))  # must not raise
    events = [make_event(i) for i in range(10)]
    for ev in events:
        assert pub.publish_event(ev) is True
    wait_until(lambda: pub.last_error is not None, what="an error")
    assert "refused" in (pub.last_error or "")
    assert not pub.connected and pub.outbox_depth == 10
    time.sleep(2.2)  # at least two more retries at a 1 s delay
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1, "one log line per state change, not per retry"
    mosquitto.start()
    rec.wait_until(lambda: event_ids(rec) == [ev.id for ev in events], timeout=15, what="events")
    wait_until(lambda: pub.last_error is None and pub.outbox_depth == 0, what="healthy")


def test_daemon_restart_delivers_stored_outbox(
    tmp_path: Path,
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
) -> None:
    rec = recorder_factory(mosquitto, EVENTS)
    mosquitto.stop()
    state = tmp_path / "daemon-state"
    first = publisher_factory(make_cfg(mosquitto), state_dir=state)
    events = [make_event(i) for i in range(12)]
    for ev in events:
        first.publish_event(ev)
    first.stop(flush_timeout=0.2)
    mosquitto.start()
    second = publisher_factory(make_cfg(mosquitto), state_dir=state)
    assert second.outbox_depth == 12
    rec.wait_until(lambda: event_ids(rec) == [ev.id for ev in events], timeout=15, what="events")
    wait_until(lambda: second.outbox_depth == 0, what="outbox drained")


_CHILD = """
import sys, time
from pathlib import Path
from edgeface.config import MqttConfig
from edgeface.publish.mqtt import MqttPublisher
from edgeface.types import Box, Event
host, port, state, count = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
pub = MqttPublisher(MqttConfig(host=host, port=port, topic_prefix={prefix!r}), {device!r}, state,
                    reconnect_min_delay=1, reconnect_max_delay=1)
pub.start()
if count == 0:
    deadline = time.monotonic() + 10
    while not pub.connected and time.monotonic() < deadline:
        time.sleep(0.02)
for i in range(count):
    pub.publish_event(Event(id=f"kill-{{i}}", type="unknown", track_id=i, person=None, score=0.1,
        runner_up=None, box=Box(0, 0, 1, 1), camera="c", device={device!r}, ts=1.0, model="m"))
print("ready", pub.connected, flush=True)
time.sleep(60)
"""


def _run_child(broker: Mosquitto, state: Path, count: int) -> subprocess.Popen[str]:
    script = textwrap.dedent(_CHILD).format(prefix=PREFIX, device=DEVICE)
    child = subprocess.Popen(
        [sys.executable, "-c", script, broker.host, str(broker.port), str(state), str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("ready"), line
    return child


def test_sigkill_leaves_retained_offline_via_lwt(
    tmp_path: Path, mosquitto: Mosquitto, recorder_factory: Callable[..., MqttRecorder]
) -> None:
    watcher = recorder_factory(mosquitto, AVAILABILITY)
    child = _run_child(mosquitto, tmp_path / "child-state", 0)
    watcher.wait_until(lambda: watcher.payloads(AVAILABILITY)[-1:] == [b"online"], what="online")
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    watcher.wait_until(lambda: watcher.payloads(AVAILABILITY)[-1:] == [b"offline"], what="LWT")
    late = recorder_factory(mosquitto, AVAILABILITY)  # a new subscriber sees the retained state
    msgs = late.wait_for_count(AVAILABILITY, 1)
    assert msgs[0].payload == b"offline" and msgs[0].retain


def test_sigkill_after_publish_event_loses_nothing(
    tmp_path: Path,
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
) -> None:
    rec = recorder_factory(mosquitto, EVENTS)
    mosquitto.stop()  # nothing can be delivered: every event is only in the outbox
    state = tmp_path / "child-state"
    child = _run_child(mosquitto, state, 15)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    mosquitto.start()
    publisher_factory(make_cfg(mosquitto), state_dir=state)
    want = [f"kill-{i}" for i in range(15)]
    rec.wait_until(lambda: event_ids(rec) == want, timeout=15, what="events after SIGKILL")


def test_clean_stop_publishes_offline_and_flushes(
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
) -> None:
    rec = recorder_factory(mosquitto, f"{BASE}/#")
    pub = publisher_factory(make_cfg(mosquitto))
    wait_until(lambda: pub.connected, what="connected")
    for i in range(20):
        pub.publish_event(make_event(i))
    pub.stop(flush_timeout=5)
    assert pub.outbox_depth == 0  # flushed before the disconnect, not left for the next start
    rec.wait_for_count(EVENTS, 20)
    assert first_seen(event_ids(rec)) == [make_event(i).id for i in range(20)]
    rec.wait_until(lambda: rec.payloads(AVAILABILITY)[-1:] == [b"offline"], what="offline")
    late = recorder_factory(mosquitto, AVAILABILITY)
    msg = late.wait_for_count(AVAILABILITY, 1)[0]
    assert (msg.payload, msg.retain) == (b"offline", True)


def test_presence_and_status_are_retained_and_republished(
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
) -> None:
    mosquitto.stop()
    pub = publisher_factory(make_cfg(mosquitto))
    pub.publish_presence("Zoë Ångström", {"state": "home", "score": 0.9})
    pub.publish_presence("Bob", {"state": "home"})
    pub.publish_status({"fps": 12.5})
    mosquitto.start()  # state set while the broker was away appears after the connect
    wait_until(lambda: pub.connected, timeout=15, what="connected")
    zoe = f"{BASE}/presence/{slugify('Zoë Ångström')}"
    bob = f"{BASE}/presence/{slugify('Bob')}"
    pub.clear_presence("Bob")
    wait_until(  # the clear (an empty retained message) has reached the broker
        lambda: f"'{bob}', ... (0 bytes))" in mosquitto.log(), what="the clear at the broker"
    )
    rec = recorder_factory(mosquitto, f"{BASE}/#")
    rec.wait_until(lambda: bool(rec.on(zoe)) and bool(rec.on(f"{BASE}/status")), what="retained")
    assert json.loads(rec.payloads(zoe)[0]) == {"state": "home", "score": 0.9}
    assert rec.on(zoe)[0].retain
    # set while disconnected, sent once connected: it says so (issue 15, minor)
    assert json.loads(rec.payloads(f"{BASE}/status")[0]) == {"fps": 12.5, "mqtt_connected": True}
    assert rec.on(bob) == []  # cleared: no retained presence
    assert zoe.isascii() and "+" not in zoe and "#" not in zoe


def test_outbox_overflow_drops_oldest_and_counts(
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
) -> None:
    rec = recorder_factory(mosquitto, EVENTS)
    mosquitto.stop()
    pub = publisher_factory(make_cfg(mosquitto, outbox_max=10))
    for i in range(15):
        pub.publish_event(make_event(i))
    assert pub.outbox_depth == 10 and pub.outbox_dropped == 5
    mosquitto.start()
    want = [make_event(i).id for i in range(5, 15)]
    rec.wait_until(lambda: event_ids(rec) == want, timeout=15, what="the newest 10 events")
    time.sleep(0.2)
    assert event_ids(rec) == want


def test_hostile_commands_get_error_replies(
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
) -> None:
    import paho.mqtt.publish as single

    rec = recorder_factory(mosquitto, CMD_RESULT)
    pub = publisher_factory(make_cfg(mosquitto))
    calls: list[str] = []

    def boom() -> dict[str, Any]:
        calls.append("boom")
        raise RuntimeError("handler exploded")

    def weird() -> dict[str, Any]:
        calls.append("weird")
        return ["not", "a", "dict"]  # type: ignore[return-value]

    worker = CommandWorker(
        {"ping": lambda: {"pong": True}, "boom": boom, "weird": weird}, pub.publish_reply
    )
    worker.start()
    pub.command_sink = worker.submit
    wait_until(lambda: pub.connected, what="connected")
    # the cmd/+ subscription is sent right after CONNACK; mosquitto logs it once it is active
    wait_until(lambda: f" 1 {BASE}/cmd/+" in mosquitto.log(), what="cmd/+ subscribed")

    cases: list[tuple[str, bytes, str]] = [
        ("ping", os.urandom(256) + b"\xff", "UTF-8"),
        ("ping", b"{" + b'"a":"' + b"x" * 70_000 + b'"}', "too large"),
        ("ping", b"[" * 500 + b"]" * 500, "nested"),
        ("ping", b'{"a":' * 20 + b"1" + b"}" * 20, "nested"),
        ("ping", b"[1, 2]", "JSON object"),
        ("ping", b'"text"', "JSON object"),
        ("ping", b"{not json", "malformed"),
        ("ping", b'{"x": NaN}', "malformed"),
        ("nope", b"{}", "unknown command"),
        ("Bad_Name", b"{}", "invalid command name"),
        ("x" * 40, b"{}", "invalid command name"),
        ("boom", b"{}", "handler exploded"),
        ("weird", b"{}", "not an object"),
    ]
    for n, (name, payload, expected) in enumerate(cases, start=1):
        single.single(
            f"{BASE}/cmd/{name}", payload, qos=1, hostname=mosquitto.host, port=mosquitto.port
        )
        replies = rec.wait_for_count(CMD_RESULT, n)
        reply = json.loads(replies[-1].payload)
        assert reply["ok"] is False, (name, reply)
        assert expected in reply["error"], (name, reply)
        assert "command" in reply
    # Only well-formed requests for known commands reached the daemon's handler.
    assert calls == ["boom", "weird"]

    single.single(
        f"{BASE}/cmd/ping",
        b'{"request_id": "r1"}',
        qos=1,
        hostname=mosquitto.host,
        port=mosquitto.port,
    )
    reply = json.loads(rec.wait_for_count(CMD_RESULT, len(cases) + 1)[-1].payload)
    assert reply == {"ok": True, "command": "ping", "request_id": "r1", "result": {"pong": True}}
    # Still publishing.
    events = recorder_factory(mosquitto, EVENTS)
    pub.publish_event(make_event(1))
    events.wait_for_count(EVENTS, 1)
    assert pub.connected
    worker.stop()


def test_password_never_logged(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],
    publisher_factory: PublisherFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cr3t-Pa55-do-not-log"
    broker = mosquitto_factory(allow_anonymous=False, users={"edge": secret})
    good = tmp_path / "good.pw"
    good.write_text(secret + "\n")
    bad = tmp_path / "bad.pw"
    bad.write_text(secret + "-wrong\n")
    caplog.set_level(logging.DEBUG)

    ok = publisher_factory(
        make_cfg(broker, username="edge", password_file=str(good)), state_dir=tmp_path / "a"
    )
    wait_until(lambda: ok.connected, what="authenticated connection")

    denied = publisher_factory(
        make_cfg(broker, username="edge", password_file=str(bad)),
        state_dir=tmp_path / "b",
        client_id="edgeface-denied",
    )
    wait_until(lambda: denied.last_error is not None, what="refusal")
    time.sleep(2.2)  # more retries, still one line
    assert "not authori" in (denied.last_error or "").lower()
    assert not denied.connected
    refusals = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert len(refusals) == 1
    ok.stop(1)
    denied.stop(0)

    for record in caplog.records:
        assert secret not in record.getMessage()
    assert secret not in caplog.text
    assert secret not in (denied.last_error or "")


def test_publish_event_raises_nothing_when_outbox_unusable(
    tmp_path: Path,
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    rec = recorder_factory(mosquitto, EVENTS)
    pub = publisher_factory(make_cfg(mosquitto), state_dir=blocker / "state")
    assert "outbox" in (pub.last_error or "")
    wait_until(lambda: pub.connected, what="connected")
    assert pub.publish_event(make_event(0)) is False  # sent live, not durable
    rec.wait_for_count(EVENTS, 1)
    assert pub.outbox_depth == 0


class _SilentBroker:
    """Accepts one MQTT 3.1.1 client, answers CONNECT, then never acknowledges a PUBLISH."""

    def __init__(self) -> None:
        import socket
        import threading

        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.received = b""
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._server.accept()
        self._conns.append(conn)
        conn.recv(4096)  # CONNECT
        conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted
        while chunk := conn.recv(65536):
            self.received += chunk

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        self._server.close()


def test_rows_stay_until_the_broker_acknowledges(
    tmp_path: Path,
    mosquitto: Mosquitto,
    recorder_factory: Callable[..., MqttRecorder],
    publisher_factory: PublisherFactory,
) -> None:
    silent = _SilentBroker()
    state = tmp_path / "unacked"
    try:
        cfg = MqttConfig(host="127.0.0.1", port=silent.port, topic_prefix=PREFIX)
        pub = publisher_factory(cfg, state_dir=state)
        wait_until(lambda: pub.connected, what="connected to the silent broker")
        for i in range(3):
            pub.publish_event(make_event(i))
        wait_until(lambda: b"ev-00000" in silent.received, what="the event was sent")
        time.sleep(0.3)
        assert pub.outbox_depth == 3  # sent is not delivered: no PUBACK, no delete
        pub.stop(flush_timeout=0.2)
    finally:
        silent.close()
    rec = recorder_factory(mosquitto, EVENTS)
    publisher_factory(make_cfg(mosquitto), state_dir=state)
    want = [make_event(i).id for i in range(3)]
    rec.wait_until(lambda: event_ids(rec) == want, what="redelivery after restart")


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(crt), "-subj", f"/CN={name}", "-days", "2"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, crt


def _make_server_cert(directory: Path, ca_key: Path, ca_crt: Path) -> tuple[Path, Path]:
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    # Only a name the client never dials, so the host name check fails unless tls.insecure.
    ext.write_text("subjectAltName=DNS:broker.invalid\n")
    subprocess.run(
        ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(csr), "-subj", "/CN=broker.invalid"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, crt


@pytest.mark.skipif(not Path("/usr/bin/openssl").exists(), reason="openssl CLI not installed")
def test_tls_reasons_and_insecure_flag(
    tmp_path: Path,
    mosquitto_factory: Callable[..., Mosquitto],
    publisher_factory: PublisherFactory,
) -> None:
    from broker import BrokerTls

    from edgeface.config import TlsConfig

    ca_key, ca_crt = _make_ca(tmp_path, "goodca")
    _, other_crt = _make_ca(tmp_path, "otherca")
    srv_key, srv_crt = _make_server_cert(tmp_path, ca_key, ca_crt)
    broker = mosquitto_factory(tls=BrokerTls(cafile=ca_crt, certfile=srv_crt, keyfile=srv_key))

    def tls_pub(ca: Path, insecure: bool, name: str) -> MqttPublisher:
        tls = TlsConfig(enabled=True, ca_file=str(ca), insecure=insecure)
        return publisher_factory(
            make_cfg(broker, tls=tls), state_dir=tmp_path / name, client_id=f"edgeface-{name}"
        )

    hostname = tls_pub(ca_crt, insecure=False, name="hostname")
    wrong_ca = tls_pub(other_crt, insecure=True, name="wrongca")
    good = tls_pub(ca_crt, insecure=True, name="good")
    wait_until(lambda: good.connected, what="TLS connection")
    good.publish_event(make_event(0))
    wait_until(lambda: good.outbox_depth == 0, what="PUBACK over TLS")
    wait_until(lambda: hostname.last_error is not None and wrong_ca.last_error is not None)
    assert (hostname.last_error or "").startswith("TLS: certificate verify failed")
    assert "mismatch" in (hostname.last_error or "")
    assert (wrong_ca.last_error or "").startswith("TLS: certificate verify failed")
    assert not hostname.connected and not wrong_ca.connected
