"""Home Assistant discovery as the daemon keeps it: announced at start and after every gallery
change, with the entities of people who left the gallery removed.

Owns: who was announced last (to remove exactly those who left). Never: builds a payload
(`publish.discovery` does) or connects (the publisher republishes retained messages itself).
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeface.config import Config
from edgeface.publish import discovery
from edgeface.publish.mqtt import MqttPublisher


class DiscoveryAnnouncer:
    """`people(names)` from the gallery watcher's thread; a no-op unless `mqtt.ha_discovery`."""

    def __init__(self, publisher: MqttPublisher, cfg: Config, cameras: Sequence[str]) -> None:
        self.publisher, self.cfg, self.cameras = publisher, cfg, list(cameras)
        self._announced: list[str] = []

    def people(self, people: Sequence[str]) -> None:
        m = self.cfg.mqtt
        if not m.ha_discovery:
            return
        device = self.cfg.device
        messages = discovery.removals(device.id, self._announced, people, m.ha_prefix)
        messages += discovery.discovery_messages(
            device.id,
            device.name,
            m.topic_prefix,
            self.cameras,
            people,
            m.ha_prefix,
            int(3 * m.status_interval),
        )
        for topic, payload in messages:
            self.publisher.publish_retained(topic, payload)
        self._announced = list(people)
