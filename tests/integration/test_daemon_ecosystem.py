"""The opt-in integrations through the real daemon: HA discovery, unknown visitors, metrics."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import daemon_support as support
import pytest
import yaml
from broker import free_port

DEVICE = "eco"


@pytest.fixture(scope="module")
def scene(tmp_path_factory, analyzer):
    made = support.make_scene(tmp_path_factory.mktemp("eco"), analyzer)
    return made.gallery, made.video


def test_discovery_unknowns_and_metrics_from_the_daemon(
    tmp_path, scene, mosquitto, recorder_factory
):
    pytest.importorskip("prometheus_client", reason="metrics extra not installed")
    gallery, video = scene
    metrics_port = free_port()
    state = tmp_path / "state"
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device": {"id": DEVICE, "name": "Front door"},
                "camera": {"source": str(video), "name": "door", "loop": True},
                "gallery": {"path": str(gallery), "settle_seconds": 0},
                "state_dir": str(state),
                "mqtt": {"port": mosquitto.port, "ha_discovery": True, "status_interval": 1},
                "metrics": {"enabled": True, "port": metrics_port},
                "unknowns": {"enabled": True},
            }
        )
    )
    ha = recorder_factory(mosquitto, "homeassistant/#")
    events = recorder_factory(mosquitto, f"edgeface/{DEVICE}/events")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeface", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        events.wait_until(
            lambda: (
                {json.loads(p)["type"] for p in events.payloads(f"edgeface/{DEVICE}/events")}
                >= {"recognized", "unknown"}
            ),
            timeout=60,
            what="a recognized and an unknown event",
        )
        topics = {m.topic for m in ha.messages}
        assert any(
            t.startswith("homeassistant/binary_sensor/") and "presence" in t for t in topics
        ), topics
        assert any("last_recognized" in t or "last" in t for t in topics), topics
        presence = [json.loads(m.payload) for m in ha.messages if "binary_sensor" in m.topic]
        assert f"edgeface/{DEVICE}/availability" in json.dumps(presence[0])
        scrape = b""
        deadline = time.monotonic() + 30  # the first status (and metrics update) is periodic
        while time.monotonic() < deadline and b"fps" not in scrape:
            time.sleep(0.5)
            scrape = urllib.request.urlopen(
                f"http://127.0.0.1:{metrics_port}/metrics", timeout=5
            ).read()
        assert b"fps" in scrape, scrape[:500]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    crops = list((state / "unknowns").rglob("*.jpg")) + list((state / "unknowns").rglob("*.png"))
    assert crops, "the stranger's best crop is kept"
    for crop in crops:
        assert crop.stat().st_mode & 0o077 == 0
    listing = subprocess.run(
        [sys.executable, "-m", "edgeface", "unknown", "list", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert "1 " in listing.stdout or "cluster" in listing.stdout.lower(), listing.stdout
