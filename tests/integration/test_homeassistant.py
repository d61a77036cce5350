"""edgeface against a real Home Assistant Core: discovery, states, availability, automations.

Home Assistant (the version scripts/homeassistant.sh installs into a cached venv outside the
checkout; skipped with the reason when it cannot be installed) runs with its own config
directory on a free port, onboarded and given its MQTT entry through the REST API like the UI
does. The real daemon runs on a composed video of real faces (tests/daemon_support.py) against
the test's own mosquitto. Every wait polls HA's REST API with a deadline.
"""

from __future__ import annotations

import shutil
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import cv2
import daemon_support as support
import pytest
from broker import Mosquitto, mosquitto_available
from homeassistant_support import HomeAssistant, ha_venv

from edgeface.samples import enrollment_photos, packaged_faces

DEVICE_NAME = "Front door"
PREFIX = "front_door"  # HA's entity ids start with the slug of the device name
NEWCOMER = "Ana María"
LEAVING = "Bo"


@pytest.fixture(scope="module")
def scene(tmp_path_factory, analyzer) -> support.Scene:
    return support.make_scene(tmp_path_factory.mktemp("ha-scene"), analyzer)


@pytest.fixture
def stack(tmp_path) -> Iterator[tuple[Mosquitto, HomeAssistant]]:
    """mosquitto plus an onboarded HA with the MQTT integration pointed at it."""
    if not mosquitto_available():
        pytest.skip("mosquitto binary not found (apt install mosquitto)")
    venv = ha_venv()
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    ha = HomeAssistant(venv, tmp_path / "ha", input_texts=("person_at_door", "stranger_at_door"))
    try:
        ha.start()
        ha.onboard()
        ha.add_mqtt(broker.host, broker.port)
        yield broker, ha
    finally:
        ha.stop()
        broker.stop()


def start_daemon(tmp: Path, scene: support.Scene, broker: Mosquitto) -> support.DaemonProcess:
    gallery = tmp / "gallery"
    if not gallery.exists():
        shutil.copytree(scene.gallery, gallery)
    config = support.write_config(
        tmp,
        scene.video,
        gallery,
        broker.port,
        device={"id": support.DEVICE, "name": DEVICE_NAME},
        mqtt={"ha_discovery": True, "status_interval": 5},
    )
    return support.DaemonProcess(config, tmp / "daemon.log")


def enrol(tmp: Path, person: str) -> None:
    folder = tmp / "gallery" / person
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), enrollment_photos(packaged_faces().person_photo)[0])


def entity(component: str, name: str) -> str:
    """The entity id HA derives from the device and entity names (accents dropped, as HA does)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = "".join(ch if ch.isalnum() else "_" for ch in ascii_name.lower())
    return f"{component}.{PREFIX}_{slug}"


def test_entities_states_availability_enrolment_and_restart(tmp_path, scene, stack):
    broker, ha = stack
    presence = entity("binary_sensor", scene.person)
    last = entity("sensor", "last recognized door")
    diagnostics = [
        entity("sensor", n)
        for n in ("frames per second", "gallery people", "outbox depth", "gallery version")
    ]
    daemon = start_daemon(tmp_path, scene, broker)
    try:
        ha.wait(
            lambda: ha.mqtt_entities() >= {presence, last, *diagnostics},
            30,
            "the discovered entities",
        )
        assert len(ha.mqtt_entities()) == 6, ha.mqtt_entities()
        device = ha.template(f"{{{{ device_id('{presence}') }}}}")
        assert {ha.template(f"{{{{ device_id('{e}') }}}}") for e in diagnostics} == {device}
        assert ha.template(f"{{{{ device_attr('{device}', 'name') }}}}") == DEVICE_NAME

        # A recognition: presence on, the camera's sensor names her with the event as attributes.
        ha.wait_state(presence, "on", timeout=40)
        ha.wait_state(last, scene.person)
        attributes = ha.attributes(last)
        assert attributes["type"] == "recognized" and attributes["camera"] == "door", attributes
        ha.wait(
            lambda: ha.state(entity("sensor", "gallery people")) == "1", 30, "gallery people = 1"
        )

        # Enrolment adds an entity, removal deletes it, and HA logs no warning about either
        # (the gallery size in a later status shows HA has read everything published before).
        newcomer = entity("binary_sensor", NEWCOMER)
        enrol(tmp_path, NEWCOMER)
        ha.wait(lambda: newcomer in ha.mqtt_entities(), 30, f"{newcomer} to appear")
        ha.wait(lambda: ha.state(newcomer) == "off", 30, f"{newcomer} off (retained presence)")
        shutil.rmtree(tmp_path / "gallery" / NEWCOMER)
        ha.wait(lambda: newcomer not in ha.mqtt_entities(), 30, f"{newcomer} to disappear")
        ha.wait_state(entity("sensor", "gallery people"), "1")
        problems = ha.problems()
        assert not problems, "\n".join(problems)

        # An HA restart restores the state from the retained messages.
        ha.restart()
        ha.wait_state(entity("sensor", "gallery people"), "1")
        ha.wait_state(presence, "on")  # the retained presence (presence_timeout is 300 s)
        assert ha.state(entity("sensor", "gallery version")) not in (None, "unknown", "unavailable")

        # SIGTERM: the daemon says offline -> every entity unavailable.
        leaving = entity("binary_sensor", LEAVING)
        enrol(tmp_path, LEAVING)
        ha.wait(lambda: leaving in ha.mqtt_entities(), 30, f"{leaving} to appear")
        assert daemon.terminate() == 0
        for e in (presence, last, *diagnostics):
            ha.wait_state(e, "unavailable", timeout=15)

        # Removed while the daemon is stopped: no ghost entity once it is back.
        shutil.rmtree(tmp_path / "gallery" / LEAVING)
        daemon = start_daemon(tmp_path, scene, broker)
        ha.wait(lambda: ha.state(presence) != "unavailable", 30, "the daemon back online")
        ha.wait(lambda: leaving not in ha.mqtt_entities(), 30, f"{leaving} to disappear")

        # SIGKILL: the broker's last will says it.
        daemon.kill()
        ha.wait_state(presence, "unavailable", timeout=30)
    finally:
        daemon.close()
    problems = ha.problems()
    assert not problems, "\n".join(problems)


def automation(alias: str, trigger: dict[str, str], text: str) -> dict[str, object]:
    """An automation as HA's automation editor saves it. Its action (for the test only) appends
    the first letter of the event type that fired it to input_text.<text>."""
    entity_id = f"input_text.{text}"
    return {
        "alias": alias,
        "description": "",
        "mode": "queued",
        "trigger": [trigger],
        "condition": [],
        "action": [
            {
                "service": "input_text.set_value",
                "target": {"entity_id": entity_id},
                "data": {
                    "value": f"{{{{ states('{entity_id}') }}}}{{{{ trigger.payload_json.type[0] }}}}"
                },
            }
        ],
    }


def test_automations_on_device_triggers_fire(tmp_path, scene, stack):
    """Automations for "when <person> is recognised at the front door" and "when a stranger is
    seen" on the device triggers HA's UI offers (no template in the trigger) fire, each on its
    own events only."""
    broker, ha = stack
    # The daemon publishes discovery first; the UI lists the device's triggers from it.
    daemon = start_daemon(tmp_path, scene, broker)
    try:
        presence = entity("binary_sensor", scene.person)
        ha.wait(lambda: presence in ha.mqtt_entities(), 30, "discovery")
        device = ha.template(f"{{{{ device_id('{presence}') }}}}")
        recognized = {
            "platform": "device",
            "domain": "mqtt",
            "device_id": device,
            "type": "recognized",
            "subtype": scene.person,
        }
        stranger = {**recognized, "type": "seen", "subtype": "unknown face"}
        for key, alias, trigger, text in (
            ("edgeface_person", f"{scene.person} at the front door", recognized, "person_at_door"),
            ("edgeface_stranger", "A stranger at the front door", stranger, "stranger_at_door"),
        ):
            result = ha.post(
                f"/api/config/automation/config/{key}", automation(alias, trigger, text)
            )
            assert result == {"result": "ok"}, result
        ha.wait(
            lambda: (
                ha.template("{{ states.automation | map(attribute='state') | list }}")
                == "['on', 'on']"
            ),
            20,
            "both automations loaded",
        )
        # Each fires, and only on its own events: "r"ecognized for her, "u"nknown for strangers.
        ha.wait(
            lambda: (
                bool(ha.state("input_text.person_at_door"))
                and bool(ha.state("input_text.stranger_at_door"))
            ),
            40,
            "both automations to fire",
        )
    finally:
        daemon.terminate()
    assert set(str(ha.state("input_text.person_at_door"))) == {"r"}
    assert set(str(ha.state("input_text.stranger_at_door"))) == {"u"}
    problems = ha.problems()
    assert not problems, "\n".join(problems)
