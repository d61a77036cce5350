#!/usr/bin/env python3
"""React to edgeface `recognized` events: print a line and, optionally, run a command.

A plain paho-mqtt (v2 API) client; it does not import edgeface, so it can run on any machine that
reaches the broker (pip install paho-mqtt). Events arrive at least once (QoS 1 with an outbox on
the device), so they are de-duplicated by their `id`.

    python3 subscriber.py --host broker.local
    python3 subscriber.py --device door-pi --person "Eileen Collins" -- notify-send "at the door"

The command gets the event in its environment: EDGEFACE_PERSON, EDGEFACE_CAMERA, EDGEFACE_DEVICE,
EDGEFACE_SCORE, EDGEFACE_EVENT (the JSON). It is run without a shell, one at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections import OrderedDict
from typing import Any

import paho.mqtt.client as mqtt

SEEN_IDS = 1000  # remember this many event ids for de-duplication


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--username")
    p.add_argument("--password-env", help="environment variable holding the password")
    p.add_argument("--prefix", default="edgeface", help="mqtt.topic_prefix of the devices")
    p.add_argument("--device", default="+", help="device.id (default: every device)")
    p.add_argument("--person", action="append", help="only these people (repeatable)")
    p.add_argument("--count", type=int, help="exit after reacting this many times")
    p.add_argument("command", nargs="*", help="command to run for each event (after --)")
    return p.parse_args(argv)


class Reactor:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.topic = f"{args.prefix}/{args.device}/events"
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.reactions = 0

    def on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            print(f"broker refused the connection: {rc}", file=sys.stderr, flush=True)
            return
        client.subscribe(self.topic, qos=1)

    def on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        print(f"subscribed to {self.topic}", flush=True)

    def on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            event = json.loads(msg.payload)
        except ValueError:
            return  # not an event (or a cleared retained message)
        if not isinstance(event, dict) or event.get("type") != "recognized":
            return
        if self.args.person and event.get("person") not in self.args.person:
            return
        event_id = str(event.get("id"))
        if event_id in self.seen:
            return  # a redelivery
        self.seen[event_id] = None
        if len(self.seen) > SEEN_IDS:
            self.seen.popitem(last=False)
        self.react(event)
        self.reactions += 1
        if self.args.count and self.reactions >= self.args.count:
            client.disconnect()

    def react(self, event: dict[str, Any]) -> None:
        person, camera = event.get("person"), event.get("camera")
        print(
            f"recognized {person} on {event.get('device')}/{camera}"
            f" (similarity {event.get('score')})",
            flush=True,
        )
        if self.args.command:
            env = {
                **os.environ,
                "EDGEFACE_PERSON": str(person),
                "EDGEFACE_CAMERA": str(camera),
                "EDGEFACE_DEVICE": str(event.get("device")),
                "EDGEFACE_SCORE": str(event.get("score")),
                "EDGEFACE_EVENT": json.dumps(event),
            }
            result = subprocess.run(self.args.command, env=env, check=False)
            if result.returncode:
                print(f"command exited with {result.returncode}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reactor = Reactor(args)
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    if args.username:
        password = os.environ.get(args.password_env) if args.password_env else None
        client.username_pw_set(args.username, password)
    client.on_connect = reactor.on_connect
    client.on_subscribe = reactor.on_subscribe
    client.on_message = reactor.on_message
    client.reconnect_delay_set(1, 30)
    # connect_async + retry_first_connection: a broker that is not up yet is retried, not fatal.
    client.connect_async(args.host, args.port, keepalive=30)
    with contextlib.suppress(KeyboardInterrupt):
        client.loop_forever(retry_first_connection=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
