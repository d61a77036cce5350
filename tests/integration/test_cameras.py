"""Two cameras in one daemon: an HTTP MJPEG stream at the door, a video file in the garage.

Real models, a real mosquitto, faces from real photos: the enrolled person walks past the door
camera again and again, a stranger past the garage camera. Every event must name the right
person for its camera; when one camera goes away (the stream stops, the file vanishes) the other
keeps producing events, and each comes back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from broker import Mosquitto
from daemon_support import (
    DEVICE,
    DaemonProcess,
    MjpegCamera,
    edgeface,
    make_cast,
    received_events,
    wait_status,
)

from edgeface.samples import Appearance, compose_video


def _walk_past(path: Path, face: Any) -> Path:
    """5 s: `face` crosses the frame from 0.5 s to 3.5 s (one track, then a gap to end it)."""
    compose_video(path, [Appearance(face, 0.5, 3.5, (40, 90), (300, 110))], duration=5.0)
    return path


def _camera(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in status["cameras"] if c["name"] == name)


def test_two_cameras_one_daemon_each_keeps_going_when_the_other_is_down(
    tmp_path: Path, analyzer: Any, mosquitto: Mosquitto, recorder_factory: Any
) -> None:
    cast = make_cast(tmp_path, analyzer)
    person = cast.person
    door_video = _walk_past(tmp_path / "door.avi", cast.her)
    garage_video = _walk_past(tmp_path / "garage.avi", cast.stranger)
    door = MjpegCamera(door_video)
    door.start()
    config = tmp_path / "edgeface.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device": {"id": DEVICE},
                "cameras": [
                    {"name": "door", "source": door.url, "fps_cap": 15},
                    {
                        "name": "garage",
                        "source": str(garage_video),
                        "loop": True,
                        "fps_cap": 15,
                        "reconnect_max_backoff": 1,
                    },
                ],
                "gallery": {"path": str(cast.gallery), "settle_seconds": 0},
                "state_dir": str(tmp_path / "state"),
                "mqtt": {"port": mosquitto.port, "status_interval": 1},
            }
        )
    )
    check = edgeface("config", "check", config)
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines()[:3] == [
        f"{config}: cameras: 2 in one daemon (models, gallery and MQTT connection shared;"
        " a tracker each; events name the camera)",
        f"{config}: cameras[0]: door <- {door.url}",
        f"{config}: cameras[1]: garage <- {garage_video}",
    ]
    recorder = recorder_factory(mosquitto, f"edgeface/{DEVICE}/#")
    daemon = DaemonProcess(config, tmp_path / "daemon.log")

    def events_on(camera: str) -> list[dict[str, Any]]:
        return [e for e in received_events(recorder) if e["camera"] == camera]

    def more_events(camera: str, kind: str, than: int, what: str) -> None:
        recorder.wait_until(
            lambda: len([e for e in events_on(camera) if e["type"] == kind]) > than, 90, what
        )

    try:
        more_events("door", "recognized", 0, "her, recognised at the door")
        more_events("garage", "unknown", 0, "the stranger, unknown in the garage")

        # The door stream stops: the garage goes on.
        door.stop()
        wait_status(recorder, lambda s: _camera(s, "door")["outage"], 30, "the door's outage")
        garage_before = len([e for e in events_on("garage") if e["type"] == "unknown"])
        more_events("garage", "unknown", garage_before + 1, "garage events while the door is down")
        status = wait_status(recorder, lambda s: _camera(s, "door")["outage"], 5, "still down")
        assert _camera(status, "garage")["outage"] is None

        # The stream comes back on the same address: the door recovers.
        door.start()
        door_before = len([e for e in events_on("door") if e["type"] == "recognized"])
        more_events("door", "recognized", door_before, "her again after the stream came back")
        status = wait_status(
            recorder, lambda s: _camera(s, "door")["reconnects"] >= 1, 30, "a door reconnect"
        )

        # The garage file vanishes: the door goes on; then it is back.
        hidden = tmp_path / "garage.avi.away"
        shutil.move(garage_video, hidden)
        wait_status(recorder, lambda s: _camera(s, "garage")["outage"], 30, "the garage's outage")
        door_before = len([e for e in events_on("door") if e["type"] == "recognized"])
        more_events("door", "recognized", door_before, "door events while the garage is down")
        shutil.move(hidden, garage_video)
        garage_before = len([e for e in events_on("garage") if e["type"] == "unknown"])
        more_events("garage", "unknown", garage_before, "the garage back after its file returned")
        assert daemon.terminate() == 0
    finally:
        door.stop()
        daemon.close()

    events = received_events(recorder)
    assert len({e["id"] for e in events}) == len(events), "an event delivered twice"
    assert {e["camera"] for e in events} == {"door", "garage"}
    for event in events:
        expected = person if event["camera"] == "door" else None
        assert event["person"] == expected, event
        assert event["type"] in ("recognized", "left", "unknown"), event
    assert not [e for e in events_on("door") if e["type"] == "unknown"]
    assert not [e for e in events_on("garage") if e["type"] == "recognized"]
    # Track ids are the device's: never the same id on two cameras.
    tracks = {(e["camera"], e["track_id"]) for e in events}
    assert len({t for _, t in tracks}) == len(tracks)
    last = json.loads(recorder.payloads(f"edgeface/{DEVICE}/status")[-1])
    assert [c["name"] for c in last["cameras"]] == ["door", "garage"]
    assert all(c["frames"] > 0 for c in last["cameras"])
    presence = [
        json.loads(m.payload) for m in recorder.messages if "/presence/" in m.topic and m.payload
    ]
    seen = [p for p in presence if p["present"]]
    assert seen and all(p["camera"] == "door" for p in seen)  # where she was last seen
    assert "Traceback" not in daemon.log()


def test_each_camera_searches_its_frames_with_its_own_roi_and_detection() -> None:
    from edgeface.analyzer import FaceAnalyzer
    from edgeface.config import parse_config

    cameras = [
        {"name": "door", "source": "0"},
        {
            "name": "garage",
            "source": "1",
            "roi": [0.5, 0, 0.5, 1],
            "detection": {"tiles": "on", "tile_size": 200, "min_face_px": 80},
        },
    ]
    # Tiles are BlazeFace's.
    cfg = parse_config({"cameras": cameras, "models": {"detector": "blazeface-full"}})
    door, garage = cfg.all_cameras
    analyzer = FaceAnalyzer.from_config(cfg)
    search = analyzer.camera_detector(cfg, garage)
    assert search.settings.roi == (0.5, 0, 0.5, 1)
    assert (search.settings.tiles, search.settings.tile_size) == ("on", 200)
    assert search.tile_detector is not search.detector  # the short-range tile model
    plain = analyzer.camera_detector(cfg, door)
    assert plain.settings.roi is None and plain.settings.tiles == "off"
    # YuNet's search size follows the camera's own detection.min_face_px.
    cfg = parse_config({"cameras": cameras, "models": {"detector": "yunet"}})
    analyzer = FaceAnalyzer.from_config(cfg)
    searches = [analyzer.camera_detector(cfg, camera) for camera in cfg.all_cameras]
    assert [s.detector.settings.search_face_px for s in searches] == [40, 80]
    assert searches[1].settings.roi == (0.5, 0, 0.5, 1)
