"""`edgeface watch`: subscribe to the events of one or all devices and print them readably.

Owns: a small paho subscriber for people trying edgeface out. Never: publishes anything.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

from edgeface.config import MqttConfig, read_password
from edgeface.errors import EdgefaceError


def describe(payload: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(float(payload.get("ts", 0))).strftime("%H:%M:%S")
    who = payload.get("person") or "an unknown face"
    kind = payload.get("type")
    where = f"{payload.get('device')}/{payload.get('camera')}"
    score = payload.get("score", 0.0)
    if kind == "left":
        return f"{when} {where}: {who} left after {payload.get('duration', 0):.1f}s (track {payload.get('track_id')})"
    runner = payload.get("runner_up")
    runner_text = f", runner-up {runner['person']} {runner['score']:.2f}" if runner else ""
    verb = "recognized" if kind == "recognized" else "saw"
    return f"{when} {where}: {verb} {who} (similarity {score:.2f}{runner_text}, track {payload.get('track_id')})"


def watch_events(
    cfg: MqttConfig, device: str, count: int | None, timeout: float | None, raw: bool
) -> int:
    received = 0
    done = threading.Event()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgeface-watch-{time.time_ns()}"
    )
    if cfg.username:
        client.username_pw_set(cfg.username, read_password(cfg))
    if cfg.tls.enabled:
        client.tls_set(
            ca_certs=cfg.tls.ca_file, certfile=cfg.tls.cert_file, keyfile=cfg.tls.key_file
        )
    topic = f"{cfg.topic_prefix}/{device}/events"

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            print(f"edgeface: broker refused the connection: {reason}", file=sys.stderr)
            done.set()
            return
        c.subscribe(topic, qos=1)
        print(f"watching {topic} on {cfg.host}:{cfg.port}", file=sys.stderr, flush=True)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal received
        try:
            payload = json.loads(msg.payload)
            print(json.dumps(payload, ensure_ascii=False) if raw else describe(payload), flush=True)
        except (ValueError, KeyError, TypeError):
            print(f"{msg.topic}: unreadable payload ({len(msg.payload)} bytes)", flush=True)
        received += 1
        if count is not None and received >= count:
            done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive)
    except OSError as exc:
        raise EdgefaceError(f"mqtt {cfg.host}:{cfg.port}: cannot connect ({exc})") from exc
    client.loop_start()
    try:
        done.wait(timeout)
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()
        client.disconnect()
    return 0
