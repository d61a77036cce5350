"""The publisher for `mqtt.enabled: false`: biometric events stay on the device.

Owns: standing in for `MqttPublisher` with the same methods, so the daemon runs unchanged with
MQTT off: events, presence, status, discovery and snapshots are dropped on the spot, and the one
log line at start says so.
Never: opens a socket, reads the MQTT password or certificates, or writes an outbox. An outbox
that nobody sends would fill up to `mqtt.outbox_max` with biometric events and deliver them all
the day MQTT is switched on; events are logged and counted instead. An outbox left by an earlier
run with MQTT on is left untouched (named in the log line; delete it to discard its events).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeface.config import Config
from edgeface.publish.mqtt import MqttPublisher
from edgeface.publish.outbox import OUTBOX_FILENAME
from edgeface.types import Event

log = logging.getLogger(__name__)


class MqttOff:
    """A publisher that sends nothing; `connected` is always False and nothing is ever owed."""

    connected = False
    command_sink: Callable[[str, bytes], None] | None = None
    outbox_depth = 0
    outbox_dropped = 0
    last_error: str | None = None

    def __init__(self, state_dir: Path) -> None:
        self._leftover = Path(state_dir) / OUTBOX_FILENAME

    def start(self) -> None:
        log.info("MQTT is off (mqtt.enabled: false): nothing is sent; events are only logged")
        if self._leftover.exists():
            log.warning(
                "%s holds events from a run with MQTT on; kept untouched until MQTT is enabled"
                " again (delete it to discard them)",
                self._leftover,
            )

    def stop(self, flush_timeout: float = 0.0) -> None:
        """Nothing to flush."""

    def publish_event(self, event: Event) -> bool:
        """True: with MQTT off an event is handled once logged; nothing is owed to a broker."""
        return True

    def publish_status(self, payload: dict[str, Any]) -> None:
        pass

    def publish_presence(self, person: str, payload: dict[str, Any]) -> None:
        pass

    def clear_presence(self, person: str) -> None:
        pass

    def publish_retained(self, topic: str, payload: bytes) -> None:
        pass

    def publish_snapshot(self, event_id: str, jpeg: bytes) -> bool:
        return False

    def publish_reply(self, reply: bytes) -> None:
        """No commands arrive without a broker, so no reply is ever due."""


def publisher_for(cfg: Config) -> MqttPublisher | MqttOff:
    """The daemon's publisher: MQTT, or with `mqtt.enabled: false` this one."""
    if cfg.mqtt.enabled:
        return MqttPublisher(cfg.mqtt, cfg.device.id, cfg.state_path)
    return MqttOff(cfg.state_path)
