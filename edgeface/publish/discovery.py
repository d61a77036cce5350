"""Home Assistant MQTT discovery: the retained config messages that make HA show an edgeface device.

Owns: the discovery topics and JSON payloads (single-component discovery,
`<ha_prefix>/<component>/<node_id>/<object_id>/config`) for one edgeface device:

- sensor `last_recognized_<camera>`: state is the person of the latest `recognized` event on that
  camera (read from the events topic by `value_template`), the whole event as attributes;
- binary_sensor `presence_<slug>` per enrolled person (device_class presence) from
  `presence/<slug>`; removed with an empty retained payload when the person leaves the gallery;
- diagnostic sensors from the retained status JSON: frames per second, gallery size, outbox
  depth, and the gallery version a fleet operator compares;
- MQTT device triggers (`device_automation`, so automations need no template): `"<person>"
  recognized` per enrolled person (removed with the person) and `"unknown face" seen`, both
  read from the events topic.

Every entity carries the device block, the availability topic and a `unique_id` built only from
the device id, the entity kind and the camera/person slug, so it survives restarts and renames
of the friendly device name. Device triggers carry the device block only (HA gives them no
unique_id or availability); HA refers to them by device, type and subtype.

Never: connects to a broker; the daemon publishes what these functions return (retained) and
republishes it on reconnect like its other retained state. The only state kept is who was
published (`PublishedPeople`), so that people removed while the daemon was stopped are cleared.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from edgeface import __version__
from edgeface.publish.mqtt import slugify

DEFAULT_HA_PREFIX = "homeassistant"
# HA accepts only these characters in the node_id and object_id topic levels.
_HA_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")

Message = tuple[str, bytes]
log = logging.getLogger(__name__)


def ha_id(text: str) -> str:
    """`text` when it is a valid HA topic id, else a readable slug plus a short hash (distinct)."""
    if _HA_ID.fullmatch(text):
        return text
    slug = slugify(text)
    if _HA_ID.fullmatch(slug):
        return slug
    return "x_" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _node_id(device_id: str) -> str:
    return f"edgeface_{ha_id(device_id)}"


def _base(topic_prefix: str, device_id: str) -> str:
    return f"{topic_prefix.rstrip('/')}/{device_id}"


def _topic(ha_prefix: str, component: str, device_id: str, object_id: str) -> str:
    return f"{ha_prefix.rstrip('/')}/{component}/{_node_id(device_id)}/{object_id}/config"


def _common(
    device_id: str, device_name: str, topic_prefix: str, object_id: str, name: str
) -> dict[str, Any]:
    return {
        "name": name,
        "unique_id": f"{_node_id(device_id)}_{object_id}",
        "availability_topic": f"{_base(topic_prefix, device_id)}/availability",
        "payload_available": "online",
        "payload_not_available": "offline",
        **_device(device_id, device_name),
    }


def _device(device_id: str, device_name: str) -> dict[str, Any]:
    """The device and origin blocks every discovery message of this device carries."""
    return {
        "device": {
            "identifiers": [_node_id(device_id)],
            "name": device_name,
            "manufacturer": "edgeface",
            "model": "edgeface face recognition daemon",
            "sw_version": __version__,
        },
        "origin": {
            "name": "edgeface",
            "sw_version": __version__,
        },
    }


def _payload(config: dict[str, Any]) -> bytes:
    config = {k: v for k, v in config.items() if v is not None}
    return json.dumps(config, ensure_ascii=False, sort_keys=True).encode("utf-8")


def camera_object_id(camera: str) -> str:
    return f"last_recognized_{ha_id(camera)}"


def presence_object_id(person: str) -> str:
    return f"presence_{slugify(person)}"


def presence_topic(topic_prefix: str, device_id: str, person: str) -> str:
    return f"{_base(topic_prefix, device_id)}/presence/{slugify(person)}"


def recognized_trigger_object_id(person: str) -> str:
    return f"recognized_{slugify(person)}"


UNKNOWN_TRIGGER_OBJECT_ID = "unknown_face"


def _trigger(
    device_id: str,
    device_name: str,
    topic_prefix: str,
    ha_prefix: str,
    object_id: str,
    kind: str,
    subtype: str,
    condition: str,
) -> Message:
    """Device trigger firing on the `kind` events for which the Jinja `condition` holds.

    HA renders `value_template` on each message of the events topic and fires when the result
    equals `payload`; anything else renders to '' and is ignored.
    """
    config = _device(device_id, device_name)
    config.update(
        automation_type="trigger",
        topic=f"{_base(topic_prefix, device_id)}/events",
        type=kind,
        subtype=subtype,
        payload="fire",
        value_template=f"{{{{ 'fire' if {condition} else '' }}}}",
    )
    return _topic(ha_prefix, "device_automation", device_id, object_id), _payload(config)


def recognized_trigger_config(
    device_id: str, device_name: str, topic_prefix: str, person: str, ha_prefix: str
) -> Message:
    """`"<person>" recognized`: fires on each `recognized` event naming `person`."""
    return _trigger(
        device_id,
        device_name,
        topic_prefix,
        ha_prefix,
        recognized_trigger_object_id(person),
        "recognized",
        person,
        f"value_json.type == 'recognized' and value_json.person == {json.dumps(person)}",
    )


def unknown_trigger_config(
    device_id: str, device_name: str, topic_prefix: str, ha_prefix: str
) -> Message:
    """`"unknown face" seen`: fires on each `unknown` event (a stranger) of the device."""
    return _trigger(
        device_id,
        device_name,
        topic_prefix,
        ha_prefix,
        UNKNOWN_TRIGGER_OBJECT_ID,
        "seen",
        "unknown face",
        "value_json.type == 'unknown'",
    )


def last_recognized_config(
    device_id: str, device_name: str, topic_prefix: str, camera: str, ha_prefix: str
) -> Message:
    """Sensor whose state is the last person recognised on `camera`, the event as attributes.

    The events topic carries every event of the device (all cameras, all types), so both
    templates keep the previous value (`this`) for anything that is not a `recognized` event of
    this camera.
    """
    object_id = camera_object_id(camera)
    mine = f"value_json.type == 'recognized' and value_json.camera == {json.dumps(camera)}"
    config = _common(device_id, device_name, topic_prefix, object_id, f"Last recognized {camera}")
    config.update(
        state_topic=f"{_base(topic_prefix, device_id)}/events",
        value_template=f"{{{{ value_json.person if {mine} else this.state }}}}",
        json_attributes_topic=f"{_base(topic_prefix, device_id)}/events",
        json_attributes_template=(
            f"{{{{ value_json | tojson if {mine} else this.attributes | tojson }}}}"
        ),
        icon="mdi:face-recognition",
    )
    return _topic(ha_prefix, "sensor", device_id, object_id), _payload(config)


def presence_config(
    device_id: str,
    device_name: str,
    topic_prefix: str,
    person: str,
    ha_prefix: str,
    expire_after: int | None = None,
) -> Message:
    """binary_sensor `ON` while `presence/<slug>` holds `"present": true`.

    The daemon clears the retained presence with an empty payload; `value_json is defined`
    turns that (not JSON) into `OFF` instead of a template error.
    """
    topic = presence_topic(topic_prefix, device_id, person)
    object_id = presence_object_id(person)
    config = _common(device_id, device_name, topic_prefix, object_id, person)
    config.update(
        state_topic=topic,
        value_template=("{{ 'ON' if value_json is defined and value_json.present else 'OFF' }}"),
        payload_on="ON",
        payload_off="OFF",
        json_attributes_topic=topic,
        # The daemon removes this entity before it empties the topic, but HA may read both
        # messages before it has unsubscribed the entity: no attributes then, not a warning.
        json_attributes_template="{{ value if value else '{}' }}",
        device_class="presence",
        expire_after=expire_after,
    )
    return _topic(ha_prefix, "binary_sensor", device_id, object_id), _payload(config)


# (object_id, name, value_template, unit, state_class, icon)
_DIAGNOSTICS: tuple[tuple[str, str, str, str | None, str | None, str], ...] = (
    ("fps", "Frames per second", "{{ value_json.fps }}", "fps", "measurement", "mdi:speedometer"),
    (
        "gallery_people",
        "Gallery people",
        "{{ value_json.gallery.people }}",
        "people",
        "measurement",
        "mdi:account-group",
    ),
    (
        "outbox_depth",
        "Outbox depth",
        "{{ value_json.outbox_depth }}",
        "events",
        "measurement",
        "mdi:tray-full",
    ),
    (
        "gallery_version",
        "Gallery version",
        "{{ value_json.gallery.version }}",
        None,
        None,
        "mdi:source-commit",
    ),
)


def diagnostic_configs(
    device_id: str,
    device_name: str,
    topic_prefix: str,
    ha_prefix: str,
    expire_after: int | None = None,
) -> list[Message]:
    """Diagnostic sensors read from the retained status JSON."""
    messages = []
    for object_id, name, template, unit, state_class, icon in _DIAGNOSTICS:
        config = _common(device_id, device_name, topic_prefix, object_id, name)
        config.update(
            state_topic=f"{_base(topic_prefix, device_id)}/status",
            value_template=template,
            unit_of_measurement=unit,
            state_class=state_class,
            entity_category="diagnostic",
            icon=icon,
            expire_after=expire_after,
        )
        messages.append((_topic(ha_prefix, "sensor", device_id, object_id), _payload(config)))
    return messages


def discovery_messages(
    device_id: str,
    device_name: str,
    topic_prefix: str,
    cameras: Sequence[str],
    people: Iterable[str],
    ha_prefix: str = DEFAULT_HA_PREFIX,
    status_expire_after: int | None = None,
) -> list[Message]:
    """Every retained discovery message for one device, in a stable order.

    `status_expire_after` (seconds, e.g. 3 x mqtt.status_interval) makes the diagnostic sensors
    `unavailable` when the status stops arriving although the device still looks online.
    """
    messages = [
        last_recognized_config(device_id, device_name, topic_prefix, camera, ha_prefix)
        for camera in cameras
    ]
    messages += [
        presence_config(device_id, device_name, topic_prefix, person, ha_prefix)
        for person in sorted(set(people))
    ]
    messages += diagnostic_configs(
        device_id, device_name, topic_prefix, ha_prefix, status_expire_after
    )
    messages += [
        recognized_trigger_config(device_id, device_name, topic_prefix, person, ha_prefix)
        for person in sorted(set(people))
    ]
    messages.append(unknown_trigger_config(device_id, device_name, topic_prefix, ha_prefix))
    return messages


def removals(
    device_id: str,
    old_people: Iterable[str],
    new_people: Iterable[str],
    ha_prefix: str = DEFAULT_HA_PREFIX,
) -> list[Message]:
    """Empty retained payloads deleting the presence entity and the device trigger of everyone
    no longer enrolled."""
    gone = sorted(set(old_people) - set(new_people))
    return [
        (_topic(ha_prefix, component, device_id, object_id(person)), b"")
        for person in gone
        for component, object_id in (
            ("binary_sensor", presence_object_id),
            ("device_automation", recognized_trigger_object_id),
        )
    ]


class PublishedPeople:
    """The people this device holds per-person retained topics for (`presence/<slug>` and their
    discovery configs), remembered in STATE/published-people.json (0600) across restarts.

    Owns: the removal messages for everyone published before and not enrolled now, including
    people removed from the gallery while the daemon was stopped (otherwise their retained
    topics stay on the broker and Home Assistant keeps a ghost entity). Discovery configs come
    first, then the presence topic: HA deletes the entity before its state topic is emptied.
    Never: publishes anything or reads the broker; a state file it cannot read or write costs
    only the clean-up of the next start (logged once).
    """

    FILE_NAME = "published-people.json"

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / self.FILE_NAME
        self._people: set[str] | None = None  # read at the first update (state_dir may be new)
        self._warned = False

    def update(
        self,
        people: Iterable[str],
        device_id: str,
        topic_prefix: str,
        ha_prefix: str,
        complete: bool = True,
    ) -> list[Message]:
        """Removals for who left since the last update (or the last run); remembers `people`.

        An incomplete gallery (photos not indexed yet at start) removes no one: its missing
        people may only be waiting for their turn.
        """
        if not complete:
            return []
        now = set(people)
        before = self._read() if self._people is None else self._people
        messages = removals(device_id, before, now, ha_prefix)
        messages += [
            (presence_topic(topic_prefix, device_id, p), b"") for p in sorted(before - now)
        ]
        if now != before or self._people is None:
            self._write(now)
        self._people = now
        return messages

    def _read(self) -> set[str]:
        try:
            people = json.loads(self.path.read_text(encoding="utf-8"))["people"]
            return {str(p) for p in people}
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._warn(f"cannot be read ({exc})")
            return set()

    def _write(self, people: set[str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"people": sorted(people)}, out, ensure_ascii=False)
            os.replace(tmp, self.path)
        except OSError as exc:
            self._warn(f"cannot be written ({exc.strerror or exc})")

    def _warn(self, problem: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "%s %s: people removed while the daemon is stopped keep their retained MQTT topics",
                self.path,
                problem,
            )
