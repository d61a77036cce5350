"""The per-person retained topics as the daemon keeps them: Home Assistant discovery announced
at start and after every gallery change, and the topics of people who left the gallery removed.

Owns: handing `publish.discovery`'s messages to the publisher in the order Home Assistant needs
(a removed person's discovery configs before the presence topic is emptied), including people
removed while the daemon was stopped (`discovery.PublishedPeople` remembers who was published).
Never: builds a payload (`publish.discovery` does) or connects (the publisher republishes
retained messages itself).
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeface.config import Config
from edgeface.publish import discovery
from edgeface.publish.mqtt import MqttPublisher
from edgeface.publish.offline import MqttOff


class DiscoveryAnnouncer:
    """`people(names, complete)` from the gallery watcher's thread."""

    def __init__(
        self, publisher: MqttPublisher | MqttOff, cfg: Config, cameras: Sequence[str]
    ) -> None:
        self.publisher, self.cfg, self.cameras = publisher, cfg, list(cameras)
        self._published = discovery.PublishedPeople(cfg.state_path)

    def people(self, people: Sequence[str], complete: bool) -> None:
        """The gallery's people now; `complete` False while photos are still being indexed at
        start (then nobody is removed: a missing person may only be waiting for a turn)."""
        m, device = self.cfg.mqtt, self.cfg.device
        messages = self._published.update(people, device.id, m.topic_prefix, m.ha_prefix, complete)
        if m.ha_discovery:
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
