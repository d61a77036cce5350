"""A person's retained topics through the real daemon and mosquitto when they leave the gallery.

`presence/<slug>` and the Home Assistant discovery configs of a removed person are emptied:
the configs first (Home Assistant deletes the entity before the topic it reads as JSON is
emptied), and also when the folder was removed while the daemon was stopped (at the next start).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import daemon_support as support
import paho.mqtt.publish as mqtt_publish
import pytest
from broker import Mosquitto

from edgeface.publish.discovery import presence_topic, removals
from edgeface.samples import enrollment_photos, packaged_faces

NEWCOMER = "Ana María"
PRESENCE = presence_topic("edgeface", support.DEVICE, NEWCOMER)
CONFIGS = {topic for topic, _ in removals(support.DEVICE, [NEWCOMER], [])}
THEIRS = CONFIGS | {PRESENCE}


@pytest.fixture(scope="module")
def scene(tmp_path_factory, analyzer) -> support.Scene:
    return support.make_scene(tmp_path_factory.mktemp("retained-scene"), analyzer)


def gallery_with_newcomer(tmp: Path, scene: support.Scene) -> Path:
    gallery = tmp / "gallery"
    shutil.copytree(scene.gallery, gallery)
    (gallery / NEWCOMER).mkdir()
    photo = enrollment_photos(packaged_faces().person_photo)[0]
    cv2.imwrite(str(gallery / NEWCOMER / "a.jpg"), photo)
    return gallery


def retained_now(broker: Mosquitto, recorder_factory) -> dict[str, bytes]:
    """Every retained message on the broker: a fresh subscriber to '#' reads until a message it
    publishes after its SUBACK comes back (mosquitto queues the retained ones before it)."""
    recorder = recorder_factory(broker, "#")
    sentinel = f"test/sentinel/{uuid.uuid4().hex}"
    mqtt_publish.single(sentinel, b"x", hostname=broker.host, port=broker.port)
    recorder.wait_until(lambda: bool(recorder.on(sentinel)), what="the sentinel")
    return {m.topic: m.payload for m in recorder.messages if m.retain}


def published(recorder, topics: set[str]) -> bool:
    return topics <= {m.topic for m in recorder.messages if m.payload}


def emptied(recorder, topics: set[str]) -> bool:
    """The last message on each topic is an empty (deleting) one."""
    return all(recorder.payloads(t) and recorder.payloads(t)[-1] == b"" for t in topics)


@dataclass
class Setup:
    gallery: Path
    config: Path
    watch: Any  # a recorder of everything on the broker since before the first start


@pytest.fixture
def setup(tmp_path, scene, mosquitto, recorder_factory) -> Setup:
    """The scene's gallery plus the newcomer, a config with discovery, a recorder on '#'."""
    gallery = gallery_with_newcomer(tmp_path, scene)
    config = support.write_config(
        tmp_path, scene.video, gallery, mosquitto.port, mqtt={"ha_discovery": True}
    )
    return Setup(gallery, config, recorder_factory(mosquitto, "#"))


def test_removal_deletes_the_entity_before_emptying_its_presence(tmp_path, setup):
    watch = setup.watch
    daemon = support.DaemonProcess(setup.config, tmp_path / "daemon.log")
    try:
        watch.wait_until(lambda: published(watch, THEIRS), 60, "the newcomer's retained topics")
        shutil.rmtree(setup.gallery / NEWCOMER)
        watch.wait_until(lambda: emptied(watch, THEIRS), 30, "the newcomer's topics emptied")
        assert daemon.terminate() == 0
    finally:
        daemon.close()
    order = [m.topic for m in watch.messages if m.topic in THEIRS and not m.payload]
    first_presence = order.index(PRESENCE)
    assert set(order[:first_presence]) >= CONFIGS, order


def test_a_person_removed_while_the_daemon_was_stopped_is_cleared_at_start(
    tmp_path, scene, setup, mosquitto, recorder_factory
):
    watch = setup.watch
    daemon = support.DaemonProcess(setup.config, tmp_path / "first.log")
    try:
        watch.wait_until(lambda: published(watch, THEIRS), 60, "the newcomer's retained topics")
        assert daemon.terminate() == 0
    finally:
        daemon.close()
    assert set(retained_now(mosquitto, recorder_factory)) >= THEIRS

    shutil.rmtree(setup.gallery / NEWCOMER)  # while the daemon is stopped
    her = presence_topic("edgeface", support.DEVICE, scene.person)
    daemon = support.DaemonProcess(setup.config, tmp_path / "second.log")
    try:
        watch.wait_until(lambda: emptied(watch, THEIRS), 60, "the newcomer's topics emptied")
        left = retained_now(mosquitto, recorder_factory)
        assert not THEIRS & set(left), sorted(THEIRS & set(left))
        assert her in left, "the person still enrolled keeps hers"
        assert daemon.terminate() == 0
    finally:
        daemon.close()
