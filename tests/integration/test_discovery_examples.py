"""The consumer examples in deploy/examples against a real broker and real event payloads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edgeface.publish.schema import validate_event
from edgeface.types import Box, Event

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def event(kind: str, person: str | None, event_id: str, device: str = "door-pi") -> Event:
    return Event(
        id=event_id,
        type=kind,  # type: ignore[arg-type]
        track_id=1,
        person=person,
        score=0.8 if person else 0.2,
        runner_up=None,
        box=Box(10, 20, 100, 100),
        camera="door",
        device=device,
        ts=time.time(),
        model="blazeface-full+facenet-dynamic",
    )


def publish(broker, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_python_subscriber_reacts_once_per_recognized_event(mosquitto, tmp_path):
    marker = tmp_path / "reactions.txt"
    command = [
        sys.executable,
        "-c",
        "import os, sys; open(sys.argv[1], 'a').write(os.environ['EDGEFACE_PERSON'] + '\\n')",
        str(marker),
    ]
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "subscriber.py"),
            "--port",
            str(mosquitto.port),
            "--count",
            "2",
            "--",
            *command,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("subscribed to edgeface/+/events")
        topic = "edgeface/door-pi/events"
        first = event("recognized", "Eileen Collins", "a1")
        messages = [
            (topic, event("unknown", None, "a0").to_json().encode()),
            (topic, first.to_json().encode()),
            (topic, first.to_json().encode()),  # a redelivery: same id
            (topic, event("left", "Eileen Collins", "a2").to_json().encode()),
            (
                "edgeface/garden-pi/events",
                event("recognized", "bob", "b1", "garden-pi").to_json().encode(),
            ),
        ]
        for _, payload in messages:
            validate_event(json.loads(payload))
        publish(mosquitto, messages)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines() == [
        "recognized Eileen Collins on door-pi/door (similarity 0.8)",
        "recognized bob on garden-pi/door (similarity 0.8)",
    ]
    assert marker.read_text().splitlines() == ["Eileen Collins", "bob"]


def test_node_red_flow_is_wired_mqtt_json_switch_debug():
    """The flow's wiring and its rule applied to events, without Node-RED (test_node_red.py
    runs the flow in a real Node-RED)."""
    nodes = json.loads((EXAMPLES / "node-red-flow.json").read_text())
    by_id = {n["id"]: n for n in nodes}
    assert len(by_id) == len(nodes), "node ids must be unique"
    tab = next(n for n in nodes if n["type"] == "tab")
    for n in nodes:
        if n["type"] not in ("tab", "mqtt-broker"):
            assert n["z"] == tab["id"]
        for output in n.get("wires", []):
            for target in output:
                assert target in by_id, f"{n['id']} wired to missing {target}"
    chain, node = [], next(n for n in nodes if n["type"] == "mqtt in")
    while True:
        chain.append(node["type"])
        if not node["wires"]:
            break
        node = by_id[node["wires"][0][0]]
    assert chain == ["mqtt in", "json", "switch", "debug"]
    source = next(n for n in nodes if n["type"] == "mqtt in")
    assert by_id[source["broker"]]["type"] == "mqtt-broker"
    assert mqtt.topic_matches_sub(source["topic"], "edgeface/door-pi/events")
    assert source["qos"] == "1"
    switch = next(n for n in nodes if n["type"] == "switch")
    (rule,) = switch["rules"]
    assert (switch["property"], rule["t"]) == ("payload.type", "eq")
    passed = [
        e.person
        for e in (
            event("recognized", "Ann", "1"),
            event("unknown", None, "2"),
            event("left", "Ann", "3"),
        )
        if json.loads(e.to_json())["type"] == rule["v"]
    ]
    assert passed == ["Ann"]
