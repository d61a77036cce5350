"""`edgeface demo`: the daemon end to end on a sample scene, with a broker it starts itself.

Owns: making the sample gallery and video (from faces scikit-image ships), starting a private
broker (mosquitto when installed, otherwise amqtt's embedded Python broker), subscribing to the
events as any consumer would and printing them, then running the real daemon on the video and
checking that every published event was received. Never: used by the daemon in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import paho.mqtt.client as mqtt

from edgeface.config import Config, parse_config
from edgeface.errors import EdgefaceError
from edgeface.samples import (
    Appearance,
    compose_video,
    enrollment_photos,
    head_patch,
    packaged_faces,
)
from edgeface.service import Daemon
from edgeface.watch import describe

DEVICE = "demo"


def make_scene(workdir: Path, analyzer_box: tuple[float, float, float, float]) -> tuple[Path, Path]:
    """Gallery with one enrolled person, and a 13 s video: her, a stranger, then both at once."""
    faces = packaged_faces()
    gallery = workdir / "gallery"
    person_dir = gallery / faces.person
    person_dir.mkdir(parents=True, exist_ok=True)
    for n, photo in enumerate(enrollment_photos(faces.person_photo), 1):
        cv2.imwrite(str(person_dir / f"photo{n}.jpg"), photo)
    # In the video she is seen mirrored and smaller than in any enrollment photo.
    her = head_patch(
        cv2.flip(faces.person_photo, 1),
        _mirror_box(analyzer_box, faces.person_photo.shape[1]),
        1.9,
        170,
    )
    stranger, other = faces.strangers[0], faces.strangers[1]
    video = workdir / "sample.avi"
    compose_video(
        video,
        [
            Appearance(her, 0.5, 3.5, (40, 90), (300, 110)),
            Appearance(stranger, 5.0, 7.5, (420, 120), (250, 100)),
            Appearance(her, 9.0, 12.0, (60, 100), (120, 110)),
            Appearance(other, 9.0, 12.0, (450, 120), (400, 110)),
        ],
        duration=13.0,
    )
    return gallery, video


def _mirror_box(
    box: tuple[float, float, float, float], width: int
) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (width - x - w, y, w, h)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_broker(workdir: Path) -> Iterator[tuple[int, str]]:
    """A broker on a free loopback port: mosquitto if installed, else amqtt in a thread."""
    port = _free_port()
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto and os.environ.get("EDGEFACE_DEMO_BROKER") != "amqtt":
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        proc = subprocess.Popen(
            [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_for_port(port)
            yield port, "mosquitto"
        finally:
            proc.terminate()
            proc.wait(timeout=5)
        return
    with _amqtt_broker(port):
        yield port, "amqtt (embedded)"


@contextlib.contextmanager
def _amqtt_broker(port: int) -> Iterator[None]:
    try:
        from amqtt.broker import Broker
    except ImportError as exc:
        raise EdgefaceError(
            "no MQTT broker: install mosquitto (apt-get install mosquitto) or pip install amqtt"
        ) from exc
    loop = asyncio.new_event_loop()
    config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}}}
    broker = Broker(config, loop=loop)
    thread = threading.Thread(target=loop.run_forever, name="amqtt", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(broker.start(), loop).result(timeout=10)
    try:
        _wait_for_port(port)
        yield
    finally:
        # amqtt logs its own task cancellation at shutdown as an error with a traceback.
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    raise EdgefaceError(f"the demo broker did not start on port {port}")


class EventPrinter:
    """Subscribes like any consumer would and prints each event as it arrives."""

    def __init__(self, port: int) -> None:
        self.received: list[dict[str, Any]] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="edgeface-demo-watch"
        )
        self._client.on_connect = lambda c, *_: c.subscribe(f"edgeface/{DEVICE}/events", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise EdgefaceError("the demo subscriber could not subscribe")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        payload = json.loads(msg.payload)
        self.received.append(payload)
        print(f"  event  {describe(payload)}", flush=True)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def run_with_subscriber(
    cfg: Config, port: int, wait: float
) -> tuple[int, Daemon, list[dict[str, Any]]]:
    """Run the daemon to its end with a subscriber printing its events; waits up to `wait`
    seconds after the daemon ends for the subscriber to receive all it published."""
    printer = EventPrinter(port)
    daemon = Daemon(cfg)
    code = daemon.run()
    deadline = time.monotonic() + wait
    while len(printer.received) < daemon.stats.events and time.monotonic() < deadline:
        time.sleep(0.05)
    printer.close()
    return code, daemon, printer.received


def run_demo(workdir: Path) -> int:
    from edgeface.analyzer import FaceAnalyzer

    workdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(workdir / "state", ignore_errors=True)
    analyzer = FaceAnalyzer.from_config(Config())
    photo = packaged_faces().person_photo
    box = analyzer.detect(photo)[0].box
    gallery, video = make_scene(workdir, (box.x, box.y, box.w, box.h))
    print(f"sample gallery: {gallery} (1 person, photos made from scikit-image's astronaut)")
    print(f"sample video:   {video} (13 s: her, a stranger, then both; strangers from LFW)")
    with private_broker(workdir) as (port, kind):
        print(f"broker:         {kind} on 127.0.0.1:{port}")
        cfg = parse_config(
            {
                "device": {"id": DEVICE},
                "camera": {"source": str(video), "name": "sample", "fps_cap": 15},
                "gallery": {"path": str(gallery), "settle_seconds": 0},
                "state_dir": str(workdir / "state"),
                "mqtt": {"port": port},
            },
            "demo",
        )
        print("running the daemon on the sample video; events as a subscriber receives them:")
        code, daemon, events = run_with_subscriber(cfg, port, wait=10)
    published, received = daemon.stats.events, len(events)
    names = sorted({e["person"] for e in events if e["type"] == "recognized"})
    print(
        f"done: {daemon.stats.frames} frames, {published} events published, {received} received;"
        f" recognized: {', '.join(names) or 'nobody'}"
    )
    if received != published:
        print("edgeface: some events were not received", file=sys.stderr)
        return 1
    return code
