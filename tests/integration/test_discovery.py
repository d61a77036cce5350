"""Home Assistant discovery on a real mosquitto: retained, readable by a late subscriber, valid.

The payloads are published retained with a plain paho client (what the daemon's publisher does
with its retained state) and read back by a fresh subscriber, the way Home Assistant finds them
when it starts after the device. Each is validated against a JSON Schema written from Home
Assistant's MQTT discovery documentation (test_discovery_ha_schema.json beside this file).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edgeface.config import MqttConfig
from edgeface.publish.discovery import discovery_messages, removals
from edgeface.publish.mqtt import MqttPublisher

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = json.loads((Path(__file__).with_name("test_discovery_ha_schema.json")).read_text())
TOPIC = re.compile(
    r"^homeassistant/(sensor|binary_sensor|device_automation)/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config$"
)
# Home Assistant's MQTT device trigger discovery schema (mqtt/device_trigger.py, 2024.3): these
# keys are required, these are all it reads (it drops others silently, so a typo would be lost).
TRIGGER_REQUIRED = {"automation_type", "device", "subtype", "topic", "type"}
TRIGGER_KEYS = TRIGGER_REQUIRED | {"payload", "qos", "value_template", "encoding", "origin"}


def publish_retained(broker, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1, retain=True) for t, p in messages]
        for info in infos:
            info.wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def read_retained(recorder_factory, broker, expected: int) -> dict[str, bytes]:
    rec = recorder_factory(broker, "homeassistant/#")
    if expected:
        rec.wait_until(lambda: len(rec.messages) >= expected, what=f"{expected} retained configs")
    else:
        import time

        time.sleep(0.5)
    assert all(m.retain for m in rec.messages)
    return {m.topic: m.payload for m in rec.messages}


def validate(topic: str, payload: bytes) -> dict:
    match = TOPIC.match(topic)
    assert match, topic
    config = json.loads(payload)
    if match.group(1) == "device_automation":
        assert TRIGGER_REQUIRED <= set(config) <= TRIGGER_KEYS, (topic, sorted(config))
        assert config["automation_type"] == "trigger" and config["device"]["identifiers"]
        return config
    schema = {**SCHEMA, "$ref": f"#/$defs/{match.group(1)}"}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(config))
    assert not errors, (topic, [e.message for e in errors])
    return config


def test_retained_discovery_is_valid_and_follows_the_gallery(mosquitto, recorder_factory, tmp_path):
    people = ["Eileen Collins", "bob"]
    messages = discovery_messages("dev1", "Front door", "edgeface", ["door"], people)
    publish_retained(mosquitto, messages)
    seen = read_retained(recorder_factory, mosquitto, len(messages))
    assert set(seen) == {t for t, _ in messages}
    configs = {t: validate(t, p) for t, p in seen.items()}
    triggers = {t: configs.pop(t) for t in list(configs) if "/device_automation/" in t}
    assert {c["subtype"] for c in triggers.values()} == {*people, "unknown face"}

    # The topics the entities read are the ones the daemon's publisher writes.
    publisher = MqttPublisher(MqttConfig(port=mosquitto.port), "dev1", tmp_path / "state")
    try:
        state_topics = {c["state_topic"] for c in configs.values()}
        assert state_topics == {
            publisher.topic_events,
            publisher.topic_status,
            *(publisher.presence_topic(p) for p in people),
        }
        assert {c["topic"] for c in triggers.values()} == {publisher.topic_events}
        assert {c["availability_topic"] for c in configs.values()} == {publisher.topic_availability}
    finally:
        publisher.stop()
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    assert len({json.dumps(c["device"], sort_keys=True) for c in configs.values()}) == 1

    # bob leaves the gallery, Ann joins: bob's entity is deleted, Ann's appears.
    new_people = ["Eileen Collins", "Ann"]
    update = removals("dev1", people, new_people) + discovery_messages(
        "dev1", "Front door", "edgeface", ["door"], new_people
    )
    publish_retained(mosquitto, update)
    after = read_retained(recorder_factory, mosquitto, len(messages))
    names = {json.loads(p)["name"] for t, p in after.items() if "/binary_sensor/" in t}
    assert names == {"Eileen Collins", "Ann"}
    subtypes = {json.loads(p)["subtype"] for t, p in after.items() if "/device_automation/" in t}
    assert subtypes == {"Eileen Collins", "Ann", "unknown face"}
    for topic, payload in after.items():
        validate(topic, payload)


def test_two_devices_share_the_discovery_prefix_without_clashing(mosquitto, recorder_factory):
    first = discovery_messages("dev1", "Door", "edgeface", ["door"], ["bob"])
    second = discovery_messages("dev2", "Garden", "edgeface", ["garden"], ["bob"])
    publish_retained(mosquitto, first + second)
    seen = read_retained(recorder_factory, mosquitto, len(first) + len(second))
    assert len(seen) == len(first) + len(second)
    # dev2 is decommissioned: clearing its configs leaves dev1's untouched
    publish_retained(mosquitto, [(t, b"") for t, _ in second])
    left = read_retained(recorder_factory, mosquitto, len(first))
    assert set(left) == {t for t, _ in first}


def test_the_schema_rejects_what_home_assistant_rejects():
    _topic, payload = discovery_messages("dev1", "Door", "edgeface", ["door"], [])[0]
    good = json.loads(payload)
    schema = {**SCHEMA, "$ref": "#/$defs/sensor"}
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(good)
    for bad in (
        {**good, "stat_topic": "x"},  # misspelt key
        {k: v for k, v in good.items() if k != "state_topic"},  # required
        {**good, "entity_category": "config"},  # not allowed for sensors
        {**good, "availability": [{"topic": "a"}]},  # both availability forms
        {k: v for k, v in good.items() if k != "unique_id"},  # device block needs unique_id
        {**good, "device": {"name": "x"}},  # no identifiers/connections
    ):
        assert not validator.is_valid(bad), bad
