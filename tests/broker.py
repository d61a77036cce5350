"""Test helpers: a private mosquitto broker and a recording MQTT subscriber.

Owns: starting/stopping/restarting a real `mosquitto` on a free 127.0.0.1 port with its own config,
persistence, password file, ACL and TLS files in a temporary directory; a subscriber that records
what it receives. Never: touches the system broker on port 1883 or any file outside its directory.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

MOSQUITTO_BIN = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD_BIN = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def mosquitto_available() -> bool:
    return os.access(MOSQUITTO_BIN, os.X_OK)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class BrokerTls:
    """Server-side TLS files; `require_certificate` asks clients for a cert signed by `cafile`."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False


class Mosquitto:
    """One mosquitto process; `restart()` keeps the port, persistence, sessions and retained msgs."""

    def __init__(
        self,
        workdir: Path,
        *,
        allow_anonymous: bool = True,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: BrokerTls | None = None,
        port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.log_file = self.workdir / "mosquitto.log"
        self.config_file = self.workdir / "mosquitto.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_config(allow_anonymous, users, acl, tls)

    def _write_config(
        self,
        allow_anonymous: bool,
        users: dict[str, str] | None,
        acl: str | None,
        tls: BrokerTls | None,
    ) -> None:
        persist = self.workdir / "persist"
        persist.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {persist}/",
            f"log_dest file {self.log_file}",
            "log_type all",
            "connection_messages true",
            # Mosquitto drops root privileges to user `mosquitto` unless told otherwise, and that
            # user could not read our temporary files.
            f"user {getpass.getuser()}",
        ]
        if users:
            pw = self.workdir / "passwd"
            pw.write_text("")
            for name, password in users.items():
                subprocess.run(
                    [MOSQUITTO_PASSWD_BIN, "-b", str(pw), name, password],
                    check=True,
                    capture_output=True,
                )
            lines.append(f"password_file {pw}")
        if acl is not None:
            acl_file = self.workdir / "acl"
            acl_file.write_text(acl)
            lines.append(f"acl_file {acl_file}")
        if tls is not None:
            lines += [
                f"cafile {tls.cafile}",
                f"certfile {tls.certfile}",
                f"keyfile {tls.keyfile}",
                f"require_certificate {'true' if tls.require_certificate else 'false'}",
            ]
        self.config_file.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._proc = subprocess.Popen(
            [MOSQUITTO_BIN, "-c", str(self.config_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"mosquitto exited ({self._proc.returncode}): {err}{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: mosquitto writes its persistence file, then exits."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: nothing saved, like a power cut of the broker host."""
        self._end(signal.SIGKILL, 5.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr:
            proc.stderr.close()

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    connection: int  # which of the recorder's connections (1, 2, ...) delivered it


class MqttRecorder:
    """A subscriber that records every message; it reconnects on its own and keeps a persistent
    session (clean_session=False) so messages published while the broker restarts still arrive.
    Each message records which connection delivered it, so a test can tell a redelivery after a
    broker outage from a duplicate within one connection."""

    def __init__(
        self,
        broker: Mosquitto,
        topic: str = "#",
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_ca: Path | None = None,
    ) -> None:
        self.topic = topic
        self._cond = threading.Condition()
        self._messages: list[Received] = []
        self._connected = False
        self._connections = 0
        self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"recorder-{os.getpid()}-{id(self)}",
            clean_session=False,
        )
        if username:
            self._client.username_pw_set(username, password)
        if tls_ca:
            self._client.tls_set(ca_certs=str(tls_ca))
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.connect_async(broker.host, broker.port, keepalive=10)
        self._client.loop_start()
        self.wait_until(lambda: self._connected, timeout=10, what="recorder subscribed")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            with self._cond:
                self._connections += 1
            client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        # Connected for the tests means subscribed: a message published before the SUBACK
        # could miss this subscriber.
        if not any(code.is_failure for code in codes):
            with self._cond:
                self._connected = True
                self._cond.notify_all()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        with self._cond:
            self._connected = False

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self._messages.append(
                Received(msg.topic, bytes(msg.payload), msg.retain, msg.qos, self._connections)
            )
            self._cond.notify_all()

    @property
    def messages(self) -> list[Received]:
        with self._cond:
            return list(self._messages)

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self._messages if m.topic == topic]

    def payloads(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.on(topic)]

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
    ) -> None:
        """Poll `predicate` (woken early by each message) until true or fail with `what`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._cond.wait(min(remaining, 0.05))

    def wait_for_count(self, topic: str, count: int, timeout: float = 10.0) -> list[Received]:
        self.wait_until(
            lambda: sum(m.topic == topic for m in self._messages) >= count,
            timeout,
            f"{count} message(s) on {topic} (have {len(self.on(topic))})",
        )
        return self.on(topic)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
