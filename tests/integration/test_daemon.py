"""The daemon as a real process: real models, a real mosquitto, videos composed from real faces.

Each scene is a video of faces entering and leaving; the test checks the exact sequence of
events a subscriber receives, validated against the published JSON Schema.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import daemon_support as support
import pytest

from edgeface.images import load_image
from edgeface.publish.schema import validate_event
from edgeface.samples import (
    Appearance,
    compose_video,
    head_patch,
)

DEVICE = support.DEVICE


def write_config(tmp: Path, video: Path, gallery: Path, port: int, **extra) -> Path:
    """The shared scene config, reading the video once (no loop) unless a test says otherwise."""
    camera = {"loop": False, **extra.pop("camera", {})}
    return support.write_config(tmp, video, gallery, port, camera=camera, **extra)


run_daemon = support.run_daemon


def events_of(recorder) -> list[dict]:
    payloads = [json.loads(p) for p in recorder.payloads(f"edgeface/{DEVICE}/events")]
    for payload in payloads:
        validate_event(payload)
    return payloads


def summary(events: list[dict]) -> list[tuple[str, str | None]]:
    return [(e["type"], e["person"]) for e in events]


def face_patch(analyzer, image, side: int = 160):
    box = analyzer.detect(image)[0].box
    return head_patch(image, (box.x, box.y, box.w, box.h), 1.9, side)


@pytest.fixture(scope="module")
def sample_scene(tmp_path_factory, analyzer):
    """Gallery of one person (pip-shipped astronaut photo) and a video: her, then a stranger."""
    scene = support.make_scene(tmp_path_factory.mktemp("scene"), analyzer)
    return scene.gallery, scene.video, scene.person


def test_sample_scene_events_in_exact_order(tmp_path, sample_scene, mosquitto, recorder_factory):
    gallery, video, person = sample_scene
    recorder = recorder_factory(mosquitto, f"edgeface/{DEVICE}/#")
    notify = support.NotifySocket(tmp_path / "notify.sock")
    config = write_config(tmp_path, video, gallery, mosquitto.port)
    result = run_daemon(config, {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"})
    notify.close()
    assert result.returncode == 0, result.stderr[-2000:]
    recorder.wait_for_count(f"edgeface/{DEVICE}/events", 4)
    time.sleep(0.3)  # anything extra (a duplicate) would arrive now
    events = events_of(recorder)
    assert summary(events) == [
        ("recognized", person),
        ("left", person),
        ("unknown", None),
        ("left", None),
    ]
    assert len({e["id"] for e in events}) == 4
    assert events[0]["track_id"] == events[1]["track_id"] != events[2]["track_id"]
    assert events[1]["duration"] > 2.0
    assert events[0]["score"] >= 0.6 and events[2]["score"] < 0.45
    # availability: online while running, retained offline after a clean stop
    availability = recorder.payloads(f"edgeface/{DEVICE}/availability")
    assert availability[0] == b"online" and availability[-1] == b"offline"
    status = json.loads(recorder.payloads(f"edgeface/{DEVICE}/status")[-1])
    assert status["gallery"]["people"] == 1 and status["models"]
    presence = [m for m in recorder.messages if "/presence/" in m.topic]
    assert presence and json.loads(presence[0].payload)["person"] == person
    # systemd: READY once loaded, then STOPPING; the watchdog is fed while frames flow
    joined = "\n".join(message for _, message in notify.messages)
    assert "READY=1" in joined and "STOPPING=1" in joined
    assert joined.index("READY=1") < joined.index("STOPPING=1")
    state = tmp_path / "state"
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    for f in state.iterdir():
        if f.is_file():
            assert f.stat().st_mode & 0o077 == 0, f"{f} is readable by others"


def test_broker_down_at_start_then_restart_delivers_the_outbox(
    tmp_path, sample_scene, mosquitto, recorder_factory
):
    """First run: broker unreachable, every event stays in the outbox; second run delivers them."""
    gallery, video, person = sample_scene
    mosquitto.stop()
    config = write_config(tmp_path, video, gallery, mosquitto.port)
    first = run_daemon(config)
    assert first.returncode == 0, first.stderr[-2000:]
    with sqlite3.connect(tmp_path / "state" / "outbox.sqlite3") as db:
        queued = db.execute("SELECT COUNT(*) FROM outbox WHERE topic LIKE '%/events'").fetchone()[0]
    assert queued == 4
    mosquitto.start()
    recorder = recorder_factory(mosquitto, f"edgeface/{DEVICE}/events")
    second = run_daemon(config)
    assert second.returncode == 0, second.stderr[-2000:]
    recorder.wait_for_count(f"edgeface/{DEVICE}/events", 8)
    time.sleep(0.3)
    events = events_of(recorder)
    assert len(events) == 8 and len({e["id"] for e in events}) == 8
    # the first run's events come first, in order, then the second run's
    assert (
        summary(events)
        == summary(events[:4]) * 2
        == [
            ("recognized", person),
            ("left", person),
            ("unknown", None),
            ("left", None),
        ]
        * 2
    )


def test_broker_restarted_while_events_are_due(tmp_path, sample_scene, mosquitto, recorder_factory):
    gallery, video, person = sample_scene
    recorder = recorder_factory(mosquitto, f"edgeface/{DEVICE}/events")
    config = write_config(tmp_path, video, gallery, mosquitto.port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeface", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        recorder.wait_for_count(f"edgeface/{DEVICE}/events", 1, timeout=60)
        mosquitto.stop()
        time.sleep(1.5)
        mosquitto.start()
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # 4 distinct ids: a redelivered copy must not stand in for an event still on its way
    recorder.wait_until(lambda: len({e["id"] for e in events_of(recorder)}) >= 4, 30, "4 events")
    time.sleep(0.5)
    received = events_of(recorder)
    # QoS 1 is at-least-once: a message in flight when the broker stops may arrive twice, with
    # the same id, which is what subscribers de-duplicate on. Nothing may be missing or invented.
    events = list({e["id"]: e for e in received}.values())
    assert len(events) == 4
    assert summary(events) == [
        ("recognized", person),
        ("left", person),
        ("unknown", None),
        ("left", None),
    ]


def test_sigterm_flushes_and_exits_zero(tmp_path, sample_scene, mosquitto, recorder_factory):
    gallery, video, _ = sample_scene
    recorder = recorder_factory(mosquitto, f"edgeface/{DEVICE}/#")
    config = write_config(tmp_path, video, gallery, mosquitto.port, camera={"loop": True})
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeface", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        recorder.wait_for_count(f"edgeface/{DEVICE}/events", 1, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert recorder.payloads(f"edgeface/{DEVICE}/availability")[-1] == b"offline"
    events = events_of(recorder)
    opened = {e["track_id"] for e in events if e["type"] in ("recognized", "unknown")}
    closed = {e["track_id"] for e in events if e["type"] == "left"}
    assert opened == closed, "every open track gets its `left` event at shutdown"


def test_shared_photos_enrolled_and_strangers(
    tmp_path, analyzer, shared_faces, mosquitto, recorder_factory
):
    """A video made from the shared photos: two enrolled people and one who is not."""
    gallery = tmp_path / "gallery"
    train = shared_faces / "knn_examples" / "train"
    for person in ("obama", "biden"):
        (gallery / person).mkdir(parents=True)
        for photo in (train / person).iterdir():
            (gallery / person / photo.name).write_bytes(photo.read_bytes())
    obama = face_patch(analyzer, load_image(shared_faces / "knn_examples" / "test" / "obama1.jpg"))
    stranger = face_patch(
        analyzer,
        load_image(shared_faces / "facenet_pytorch" / "test_images" / "kate_siegel" / "1.jpg"),
    )
    # two_people.jpg holds obama and biden; take the face that matches biden's gallery photo
    biden_ref = analyzer.analyze(load_image(train / "biden" / "biden.jpg"))[0].embedding
    image = load_image(shared_faces / "face_recognition_extra" / "two_people.jpg")
    best = max(analyzer.analyze(image), key=lambda f: float(f.embedding @ biden_ref))
    b = best.face.box
    biden = head_patch(image, (b.x, b.y, b.w, b.h), 1.9, 160)
    video = tmp_path / "shared.avi"
    compose_video(
        video,
        [
            Appearance(obama, 0.5, 3.0, (50, 90), (250, 100)),
            Appearance(stranger, 4.5, 7.0, (400, 100), (300, 90)),
            Appearance(biden, 8.5, 11.0, (100, 100), (200, 100)),
        ],
        duration=12.0,
    )
    recorder = recorder_factory(mosquitto, f"edgeface/{DEVICE}/events")
    result = run_daemon(write_config(tmp_path, video, gallery, mosquitto.port))
    assert result.returncode == 0, result.stderr[-2000:]
    recorder.wait_for_count(f"edgeface/{DEVICE}/events", 6)
    time.sleep(0.3)
    assert summary(events_of(recorder)) == [
        ("recognized", "obama"),
        ("left", "obama"),
        ("unknown", None),
        ("left", None),
        ("recognized", "biden"),
        ("left", "biden"),
    ]
