"""SIGHUP reloads without dropping the connection; `edgeface watch` prints what is published."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import cv2
import yaml

from edgeface.samples import (
    Appearance,
    compose_video,
    enrollment_photos,
    head_patch,
    packaged_faces,
)

DEVICE = "hup"


def test_sighup_reloads_thresholds_and_gallery_without_reconnecting(
    tmp_path, analyzer, mosquitto, recorder_factory
):
    faces = packaged_faces()
    box = analyzer.detect(faces.person_photo)[0].box
    her = head_patch(faces.person_photo, (box.x, box.y, box.w, box.h), 1.9, 170)
    video = tmp_path / "loop.avi"
    compose_video(video, [Appearance(her, 0.2, 2.0, (60, 90), (200, 100))], duration=3.0)
    gallery = tmp_path / "gallery"
    gallery.mkdir()  # empty at start: she is unknown
    doc = {
        "device": {"id": DEVICE},
        "camera": {"source": str(video), "loop": True, "name": "c"},
        "gallery": {"path": str(gallery), "settle_seconds": 0},
        "state_dir": str(tmp_path / "state"),
        "mqtt": {"port": mosquitto.port},
    }
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(doc))
    recorder = recorder_factory(mosquitto, f"edgeface/{DEVICE}/#")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeface", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    events = f"edgeface/{DEVICE}/events"
    try:
        recorder.wait_until(
            lambda: any(json.loads(p)["type"] == "unknown" for p in recorder.payloads(events)),
            timeout=60,
            what="an unknown event before enrolment",
        )
        person = gallery / "Eileen"
        person.mkdir()
        for n, photo in enumerate(enrollment_photos(faces.person_photo)):
            cv2.imwrite(str(person / f"{n}.jpg"), photo)
        doc["recognition"] = {"match_threshold": 0.7, "unknown_threshold": 0.5}
        config.write_text(yaml.safe_dump(doc))
        proc.send_signal(signal.SIGHUP)
        recorder.wait_until(
            lambda: any(json.loads(p)["person"] == "Eileen" for p in recorder.payloads(events)),
            timeout=60,
            what="a recognized event after SIGHUP",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.stderr.read() if proc.stderr else ""
    online = [m for m in recorder.payloads(f"edgeface/{DEVICE}/availability") if m == b"online"]
    assert len(online) == 1, "the MQTT connection was kept across the reload"
    assert "reloading" in stderr.lower() or "reload" in stderr.lower()


def test_watch_prints_events_readably(mosquitto, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"mqtt": {"port": mosquitto.port}}))
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeface",
            "watch",
            "--config",
            str(config),
            "--count",
            "1",
            "--timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    import paho.mqtt.client as mqtt

    event = {
        "schema": "1.0",
        "id": "e1",
        "type": "recognized",
        "track_id": 3,
        "person": "Ana",
        "score": 0.8,
        "runner_up": {"person": "Bo", "score": 0.4},
        "box": [1, 2, 3, 4],
        "camera": "door",
        "device": "d1",
        "ts": time.time(),
        "model": "m",
    }
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    deadline = time.monotonic() + 20
    while watcher.poll() is None and time.monotonic() < deadline:
        client.publish("edgeface/d1/events", json.dumps(event), qos=1).wait_for_publish(5)
        time.sleep(0.3)
    client.loop_stop()
    out, _ = watcher.communicate(timeout=10)
    assert watcher.returncode == 0
    assert "d1/door: recognized Ana (similarity 0.80, runner-up Bo 0.40, track 3)" in out
