"""Shared pytest fixtures: a private mosquitto per test and recording subscribers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# pytest puts this directory (no __init__.py) on sys.path, so tests import `broker` directly.
from broker import Mosquitto, MqttRecorder, mosquitto_available

MosquittoFactory = Callable[..., Mosquitto]
RecorderFactory = Callable[..., MqttRecorder]


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """Build and start brokers with options (users, acl, tls); all are stopped after the test."""
    if not mosquitto_available():
        pytest.skip("mosquitto binary not found (apt install mosquitto)")
    brokers: list[Mosquitto] = []

    def make(**options: Any) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"broker{len(brokers)}", **options)
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.kill()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> Mosquitto:
    """A running anonymous mosquitto on a free 127.0.0.1 port (never the system one on 1883)."""
    return mosquitto_factory()


@pytest.fixture
def recorder_factory() -> Iterator[RecorderFactory]:
    recorders: list[MqttRecorder] = []

    def make(broker: Mosquitto, topic: str = "#", **options: Any) -> MqttRecorder:
        rec = MqttRecorder(broker, topic, **options)
        recorders.append(rec)
        return rec

    yield make
    for rec in recorders:
        rec.close()
