"""Settings the daemon must honour, and what it reports about them, through the real thing.

Every test runs `python -m edgeface run` or `config check` (real models, the photos scikit-image
ships) and, where MQTT is concerned, a private mosquitto: `mqtt.enabled: false` keeps everything
off the network; a reload never judges the running model with another model's thresholds; a
model in the wrong role is refused in one line naming the key; a `camera.roi` that cannot fit is
refused or named in the log; reloads and commands report what happened; status latencies count
the frames that did the work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from broker import Mosquitto, MqttRecorder
from daemon_support import (
    DEVICE,
    STATUS,
    DaemonProcess,
    NotifySocket,
    Scene,
    edgeface,
    make_scene,
)
from daemon_support import write_config as scene_config

from edgeface.models import find_model

TIMEOUT = 180  # a model load on a busy machine
BASE = f"edgeface/{DEVICE}"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, analyzer: Any) -> Scene:
    """9 s: the enrolled person, then a stranger (640x360)."""
    return make_scene(tmp_path_factory.mktemp("scene"), analyzer)


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A refused command: exit 2 and one error line (`run` logs its start line before it)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert len(lines) == 1 and lines[0].startswith("edgeface: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def config_file(tmp: Path, doc: dict[str, Any]) -> Path:
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp / "state"), **doc}))
    return path


# -- mqtt.enabled: false -------------------------------------------------------------------


def test_mqtt_off_sends_nothing_and_still_logs_and_counts_events(
    tmp_path: Path, scene: Scene, mosquitto: Mosquitto, recorder_factory: Any
) -> None:
    """A broker on the configured port sees no connection from the daemon at all; events are
    logged and counted, none is kept in an outbox, and the systemd status says MQTT is off."""
    recorder = recorder_factory(mosquitto, "#")
    config = scene_config(
        tmp_path,
        scene.video,
        scene.gallery,
        mosquitto.port,
        camera={"loop": False},
        mqtt={"enabled": False, "password_env": "EDGEFACE_UNSET_PASSWORD", "username": "u"},
    )
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "edgeface", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env={**os.environ, "NOTIFY_SOCKET": str(notify.path)},
        )
    finally:
        notify.close()
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr
    assert "MQTT is off (mqtt.enabled: false)" in log
    recognized = re.findall(r"event recognized track \d+ (.+?) score", log)
    assert recognized == [scene.person], log[-3000:]
    stopped = re.search(r"stopped after \d+ frames, (\d+) events", log)
    assert stopped and int(stopped[1]) >= 3, log[-2000:]
    assert any("mqtt off" in m for _, m in notify.messages), notify.messages
    connections = re.findall(r"New client connected .* as (\S+)", mosquitto.log())
    assert connections and all(c.startswith("recorder-") for c in connections), connections
    assert recorder.messages == []
    assert not (tmp_path / "state" / "outbox.sqlite3").exists()


# -- models.embedder changed by a reload ----------------------------------------------------


def test_reload_with_another_embedder_keeps_the_running_models_thresholds(
    tmp_path: Path, scene: Scene, mosquitto: Mosquitto
) -> None:
    """The file switches to the CASIA embedder (operating point 0.95/0.80): the MS-Celeb model
    keeps running until a restart, so its thresholds (0.65/0.50) stay too; the log says so."""
    config = scene_config(tmp_path, scene.video, scene.gallery, mosquitto.port)
    doc = yaml.safe_load(config.read_text())
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_for(lambda: ("recognized", 1) in daemon.logged_events(), 90, "recognized")
        doc["models"] = {"embedder": "facenet-dynamic"}
        config.write_text(yaml.safe_dump(doc))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda: "reload: applied" in daemon.log(), 30, "the reload")
        log = daemon.log()
        assert (
            "reload: models.embedder, recognition.match_threshold,"
            " recognition.unknown_threshold changed; takes effect on restart" in log
        ), log[-2000:]
        assert "reload: applied no changed setting" in log
        marker = log[log.index("reload: applied") :]
        seen = len(re.findall(r"event recognized", marker))

        def recognized_after() -> int:
            text = daemon.log()
            return len(re.findall(r"event recognized", text[text.index("reload: applied") :]))

        # Recognition goes on with the running model after the reload.
        daemon.wait_for(lambda: recognized_after() >= seen + 2, 90, "recognized after reload")
        assert daemon.terminate() == 0
    finally:
        daemon.close()


# -- models in the wrong role ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("models", "embedder", "blazeface-full", "models.embedder: blazeface-full is a detector"),
        (
            "models",
            "detector",
            "facenet-msceleb-dynamic",
            "models.detector: facenet-msceleb-dynamic is an embedder",
        ),
        (
            "detection",
            "tile_detector",
            "facenet-msceleb-dynamic",
            "detection.tile_detector: facenet-msceleb-dynamic is an embedder",
        ),
    ],
)
def test_model_in_the_wrong_role_is_refused_by_check_and_run(
    tmp_path: Path, section: str, key: str, value: str, expected: str
) -> None:
    doc: dict[str, Any] = {section: {key: value}, "camera": {"source": str(tmp_path / "none")}}
    if section == "detection":  # tiles are BlazeFace's
        doc["detection"]["tiles"] = "on"
        doc["models"] = {"detector": "blazeface-full"}
    config = config_file(tmp_path, doc)
    one_error_line(edgeface("config", "check", config), expected)
    one_error_line(edgeface("run", "--config", config), expected)


def test_missing_tile_detector_file_is_named_by_check(tmp_path: Path) -> None:
    missing = tmp_path / "tiles.tflite"
    config = config_file(tmp_path, {"detection": {"tiles": "on", "tile_detector": str(missing)}})
    one_error_line(edgeface("config", "check", config), "detection.tile_detector:", str(missing))


def test_raw_embedder_file_as_detector_is_refused_when_loaded(tmp_path: Path) -> None:
    """No manifest says what a bare .tflite is: check accepts it, the daemon refuses it by its
    tensors in one line naming the key (no traceback)."""
    embedder = tmp_path / "mystery.tflite"
    shutil.copy(find_model("facenet-msceleb-dynamic")[0], embedder)
    config = config_file(
        tmp_path, {"models": {"detector": str(embedder)}, "camera": {"source": "none.avi"}}
    )
    assert edgeface("config", "check", config).returncode == 0
    one_error_line(
        edgeface("run", "--config", config),
        f"models.detector: {embedder} does not look like a detector",
    )


# -- camera.roi ----------------------------------------------------------------------------


@pytest.mark.parametrize("roi", [[0.1, 0.1, 2, 2], [0.5, 0.5, 0.6, 0.2]])
def test_roi_that_fits_no_frame_is_refused_by_check(tmp_path: Path, roi: list[float]) -> None:
    config = config_file(tmp_path, {"camera": {"roi": roi}})
    one_error_line(edgeface("config", "check", config), "camera.roi:")


def test_roi_outside_the_frame_is_logged_once_at_the_first_frame(
    tmp_path: Path, scene: Scene
) -> None:
    config = scene_config(
        tmp_path,
        scene.video,
        scene.gallery,
        1,
        camera={"loop": False, "roi": [5000, 5000, 100, 100]},
        mqtt={"enabled": False},
    )
    assert edgeface("config", "check", config).returncode == 0  # the frame size is not known
    result = edgeface("run", "--config", config)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if "camera.roi" in line]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "camera.roi [5000, 5000, 100, 100] lies outside the 640x360 frame" in lines[0]


# -- reload and command reporting, status latency -------------------------------------------


def command(broker: Mosquitto, recorder: MqttRecorder, name: str, payload: Any) -> dict[str, Any]:
    """Send `cmd/<name>` and return the reply that echoes its request_id."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(f"{BASE}/cmd/{name}", json.dumps(payload), qos=1).wait_for_publish(5)
        replies = f"{BASE}/cmd/result"

        def answered() -> list[dict[str, Any]]:
            found = [json.loads(p) for p in recorder.payloads(replies)]
            return [r for r in found if r.get("request_id") == payload["request_id"]]

        recorder.wait_until(lambda: bool(answered()), 20, f"the reply to {name}")
        return answered()[0]
    finally:
        client.disconnect()
        client.loop_stop()


def test_reload_and_command_reports(
    tmp_path: Path, scene: Scene, mosquitto: Mosquitto, recorder_factory: Any
) -> None:
    recorder = recorder_factory(mosquitto, f"{BASE}/#")
    config = scene_config(tmp_path, scene.video, scene.gallery, mosquitto.port)
    doc = yaml.safe_load(config.read_text())
    daemon = DaemonProcess(config, tmp_path / "daemon.log")

    def statuses() -> list[dict[str, Any]]:
        return [json.loads(p) for p in recorder.payloads(STATUS) if p]

    try:
        daemon.wait_for(lambda: ("recognized", 1) in daemon.logged_events(), 90, "recognized")
        # Refused reload: one error line, no "applied" line, and the refusal in status.
        config.write_text(config.read_text() + "bogus_key: 1\n")
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda: "reload refused" in daemon.log(), 30, "the refusal")
        recorder.wait_until(
            lambda: "reload refused" in (statuses()[-1].get("last_error") or ""),
            20,
            "the refusal in status",
        )
        assert "reload: applied" not in daemon.log()
        # A later reload that works: the new value in the log, the refusal gone from status.
        doc["recognition"] = {"match_threshold": 0.7}
        config.write_text(yaml.safe_dump(doc))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda: "reload: applied" in daemon.log(), 30, "the reload")
        assert "reload: applied recognition.match_threshold=0.7" in daemon.log()
        count = len(statuses())
        recorder.wait_until(lambda: len(statuses()) > count + 1, 20, "a status after reload")
        assert "reload refused" not in (statuses()[-1].get("last_error") or "")

        # A refused command is not ok at the top level; any request_id comes back as sent.
        refused = command(mosquitto, recorder, "snapshot", {"request_id": 12345})
        assert refused["ok"] is False and "snapshots are disabled" in refused["error"]
        long_id = "r" * 300
        answered = command(mosquitto, recorder, "status", {"request_id": long_id})
        assert answered["ok"] is True and answered["request_id"] == long_id
        # Embedding and matching time over the frames that embedded a face, not all frames.
        latency = answered["result"]["status"]["latency_ms"]
        assert latency["embed"] > 0 and latency["match"] > 0, latency
        assert daemon.terminate() == 0
    finally:
        daemon.close()
    final = statuses()[-1]
    assert final["mqtt_connected"] is False and final["mqtt_enabled"] is True
    assert not final["last_error"], final["last_error"]
    retained = recorder_factory(mosquitto, STATUS)
    retained.wait_for_count(STATUS, 1)
    assert json.loads(retained.payloads(STATUS)[0])["mqtt_connected"] is False
