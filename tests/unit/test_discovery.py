"""Home Assistant discovery payloads: ids, topics and what the templates compute.

The templates are rendered with Jinja2 the way Home Assistant's MQTT integration does for
`value_template` / `json_attributes_template`: `value_json` is the parsed payload when it is JSON
(undefined otherwise) and `this` is the entity's current state object.
"""

from __future__ import annotations

import contextlib
import json
import os
from types import SimpleNamespace
from typing import Any

import pytest

from edgeface.publish.discovery import (
    PublishedPeople,
    discovery_messages,
    ha_id,
    presence_topic,
    removals,
)
from edgeface.publish.mqtt import slugify
from edgeface.types import Box, Event, RunnerUp

jinja2 = pytest.importorskip("jinja2", reason="jinja2 not installed (renders the HA templates)")


def configs(**kw: Any) -> dict[str, dict[str, Any]]:
    args = dict(
        device_id="dev1",
        device_name="Front door",
        topic_prefix="edgeface",
        cameras=["door"],
        people=["Eileen Collins", "bob"],
    )
    args.update(kw)
    return {topic: json.loads(payload) for topic, payload in discovery_messages(**args)}


def render(template: str, payload: bytes | str, this: Any = None) -> str:
    env = jinja2.Environment(undefined=jinja2.Undefined)
    variables: dict[str, Any] = {"value": payload, "this": this}
    with contextlib.suppress(ValueError):
        variables["value_json"] = json.loads(payload)
    return env.from_string(template).render(**variables).strip()


def event(kind: str, person: str | None, camera: str = "door") -> str:
    return Event(
        id="e1",
        type=kind,  # type: ignore[arg-type]
        track_id=3,
        person=person,
        score=0.71,
        runner_up=RunnerUp("bob", 0.3),
        box=Box(1, 2, 3, 4),
        camera=camera,
        device="dev1",
        ts=1700000000.0,
        model="m",
    ).to_json()


def by_suffix(cfgs: dict[str, dict[str, Any]], suffix: str) -> dict[str, Any]:
    (config,) = [c for t, c in cfgs.items() if t.endswith(suffix)]
    return config


def entities(cfgs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The entity configs (device triggers left out: HA gives them no availability or id)."""
    return {t: c for t, c in cfgs.items() if "/device_automation/" not in t}


def test_topics_ids_and_availability() -> None:
    cfgs = configs()
    assert sorted(t.split("/")[3] for t in entities(cfgs)) == sorted(
        [
            "last_recognized_door",
            f"presence_{slugify('Eileen Collins')}",
            "presence_bob",
            "fps",
            "gallery_people",
            "outbox_depth",
            "gallery_version",
        ]
    )
    assert sorted(t.split("/")[3] for t in cfgs.keys() - entities(cfgs).keys()) == sorted(
        [f"recognized_{slugify('Eileen Collins')}", "recognized_bob", "unknown_face"]
    )
    for topic, c in entities(cfgs).items():
        assert topic.startswith("homeassistant/") and topic.endswith("/config")
        assert c["availability_topic"] == "edgeface/dev1/availability"
        assert c["device"]["identifiers"] == ["edgeface_dev1"]
        assert c["unique_id"] == f"edgeface_dev1_{topic.split('/')[3]}"
    # stable: the same input gives byte-identical payloads (HA sees no change on republish)
    assert discovery_messages("d", "n", "p", ["c"], ["x"]) == discovery_messages(
        "d", "n", "p", ["c"], ["x"]
    )
    # another device: no unique_id in common, other availability topic
    other = entities(configs(device_id="dev2", topic_prefix="home/faces"))
    assert not {c["unique_id"] for c in entities(cfgs).values()} & {
        c["unique_id"] for c in other.values()
    }
    assert {c["availability_topic"] for c in other.values()} == {"home/faces/dev2/availability"}


def test_ha_ids_are_topic_safe_and_distinct() -> None:
    assert ha_id("door-pi_2") == "door-pi_2"
    assert ha_id("Zoë") != ha_id("Zoe")
    for text in ("Zoë", "front door", "a.b", "😀"):
        assert all(ch.isalnum() or ch in "_-" for ch in ha_id(text))


def test_removals_only_for_people_who_left() -> None:
    assert removals("dev1", ["Ann", "bob", "Eileen Collins"], ["bob"]) == [
        (f"homeassistant/{component}/edgeface_dev1/{kind}_{slugify(person)}/config", b"")
        for person in ("Ann", "Eileen Collins")
        for component, kind in (("binary_sensor", "presence"), ("device_automation", "recognized"))
    ]
    assert removals("dev1", ["bob"], ["bob", "new"], ha_prefix="ha") == []


def test_last_recognized_template_follows_recognized_events_of_its_camera() -> None:
    c = by_suffix(configs(cameras=["door", "garden"]), "last_recognized_door/config")
    assert c["state_topic"] == c["json_attributes_topic"] == "edgeface/dev1/events"
    this = SimpleNamespace(state="bob", attributes={"person": "bob"})
    state, attrs = c["value_template"], c["json_attributes_template"]
    assert render(state, event("recognized", "Eileen Collins"), this) == "Eileen Collins"
    attributes = json.loads(render(attrs, event("recognized", "Eileen Collins"), this))
    assert attributes["person"] == "Eileen Collins" and attributes["score"] == 0.71
    for other in (
        event("unknown", None),
        event("left", "Eileen Collins"),
        event("recognized", "Eileen Collins", camera="garden"),
    ):
        assert render(state, other, this) == "bob"
        assert json.loads(render(attrs, other, this)) == {"person": "bob"}


def test_presence_template_on_json_off_on_cleared() -> None:
    c = by_suffix(configs(), "presence_bob/config")
    assert c["state_topic"] == "edgeface/dev1/presence/bob"
    assert c["device_class"] == "presence"
    present = json.dumps({"person": "bob", "present": True, "last_seen": 1.0, "camera": "door"})
    assert render(c["value_template"], present) == c["payload_on"] == "ON"
    assert render(c["value_template"], "") == c["payload_off"] == "OFF"  # retained clear
    # Attributes: the presence JSON, and an empty object (not an HA warning) for the clear.
    assert json.loads(render(c["json_attributes_template"], present))["present"] is True
    assert render(c["json_attributes_template"], "") == "{}"


def test_diagnostics_read_the_status_json() -> None:
    cfgs = configs()
    status = json.dumps(
        {"fps": 7.5, "outbox_depth": 3, "gallery": {"people": 2, "version": "abc123"}}
    )
    expected = {
        "fps": "7.5",
        "gallery_people": "2",
        "outbox_depth": "3",
        "gallery_version": "abc123",
    }
    for object_id, value in expected.items():
        c = by_suffix(cfgs, f"/{object_id}/config")
        assert c["entity_category"] == "diagnostic"
        assert c["state_topic"] == "edgeface/dev1/status"
        assert render(c["value_template"], status) == value


def test_device_triggers_fire_on_their_events_only() -> None:
    """HA fires a device trigger when its value_template renders to its payload."""
    cfgs = configs()
    eileen = by_suffix(cfgs, f"/recognized_{slugify('Eileen Collins')}/config")
    bob = by_suffix(cfgs, "/recognized_bob/config")
    stranger = by_suffix(cfgs, "/unknown_face/config")
    assert (eileen["type"], eileen["subtype"]) == ("recognized", "Eileen Collins")
    assert (stranger["type"], stranger["subtype"]) == ("seen", "unknown face")
    for trigger in (eileen, bob, stranger):
        assert trigger["automation_type"] == "trigger"
        assert trigger["topic"] == "edgeface/dev1/events"
        assert trigger["device"]["identifiers"] == ["edgeface_dev1"]

    def fired(trigger: dict[str, Any], payload: str) -> bool:
        return render(trigger["value_template"], payload) == trigger["payload"]

    assert fired(eileen, event("recognized", "Eileen Collins"))
    assert not fired(bob, event("recognized", "Eileen Collins"))
    assert not fired(stranger, event("recognized", "Eileen Collins"))
    assert fired(stranger, event("unknown", None))
    assert not fired(eileen, event("unknown", None))
    for trigger in (eileen, stranger):
        assert not fired(trigger, event("left", "Eileen Collins"))
    # a name that needs escaping inside the template's string literal
    odd = [c for c in configs(people=['Zoë "Z" O\'Neil']).values() if c.get("type") == "recognized"]
    assert len(odd) == 1
    assert fired(odd[0], event("recognized", 'Zoë "Z" O\'Neil'))
    assert not fired(odd[0], event("recognized", "Zoë"))


def test_published_people_are_remembered_across_restarts(tmp_path) -> None:
    first = PublishedPeople(tmp_path)
    assert first.update(["Ann", "bob"], "dev1", "edgeface", "homeassistant") == []
    assert oct(os.stat(first.path).st_mode & 0o777) == "0o600"
    # bob is removed while the daemon is stopped; the next start clears him, configs first
    again = PublishedPeople(tmp_path)
    assert again.update(["Ann"], "dev1", "edgeface", "homeassistant", complete=False) == []
    messages = again.update(["Ann"], "dev1", "edgeface", "homeassistant")
    assert messages == [
        *removals("dev1", ["bob"], []),
        (presence_topic("edgeface", "dev1", "bob"), b""),
    ]
    assert PublishedPeople(tmp_path).update(["Ann"], "dev1", "edgeface", "homeassistant") == []


def test_an_unreadable_record_clears_no_one(tmp_path) -> None:
    (tmp_path / PublishedPeople.FILE_NAME).write_text("{not json")
    assert PublishedPeople(tmp_path).update(["Ann"], "dev1", "edgeface", "ha") == []
