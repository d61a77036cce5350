"""Prometheus metrics over real HTTP: the same figures as `status`, localhost only by default."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest

from edgeface.publish.metrics import MetricsExporter

pytest.importorskip("prometheus_client", reason="prometheus-client (the metrics extra) missing")
from prometheus_client.parser import text_string_to_metric_families

# The shape of Daemon.status() (edgeface/status.py).
STATUS: dict[str, Any] = {
    "device": "door-pi",
    "version": "0.1.0",
    "uptime": 12.5,
    "fps": 7.25,
    "faces_per_second": 3.5,
    "latency_ms": {"detect": 20.0, "embed": 35.5, "match": 0.1, "total": 60.0},
    "frames": 90,
    "events": 4,
    "camera": {"name": "door", "outage": None, "frames_dropped": 2, "reconnects": 1},
    "gallery": {"version": "0123456789abcdef", "people": 3, "templates": 7, "problems": ["x"]},
    "models": "blazeface-full+facenet-dynamic",
    "outbox_depth": 5,
    "outbox_dropped": 0,
    "mqtt_connected": True,
    "last_error": None,
}


def scrape(exporter: MetricsExporter) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def exporter():
    exp = MetricsExporter(port=0)
    yield exp
    exp.close()


def test_scrape_reports_the_status_figures(exporter):
    assert exporter.host == "127.0.0.1"
    assert scrape(exporter) == {}  # nothing before the first status
    exporter.update(STATUS)
    m = scrape(exporter)
    assert m[("edgeface_fps", ())] == 7.25
    assert m[("edgeface_faces_per_second", ())] == 3.5
    assert m[("edgeface_gallery_people", ())] == 3
    assert m[("edgeface_gallery_templates", ())] == 7
    assert m[("edgeface_gallery_problems", ())] == 1
    assert m[("edgeface_outbox_depth", ())] == 5
    assert m[("edgeface_mqtt_connected", ())] == 1
    assert m[("edgeface_camera_outage", ())] == 0
    assert m[("edgeface_frames_total", ())] == 90
    assert m[("edgeface_events_total", ())] == 4
    assert m[("edgeface_camera_reconnects_total", ())] == 1
    assert m[("edgeface_stage_latency_seconds", (("stage", "embed"),))] == pytest.approx(0.0355)
    assert m[("edgeface_gallery_info", (("version", "0123456789abcdef"),))] == 1
    info = [k for k in m if k[0] == "edgeface_info"]
    assert dict(info[0][1])["device"] == "door-pi"
    # a newer status replaces the figures
    exporter.update({**STATUS, "fps": 1.0, "outbox_depth": 0, "mqtt_connected": False})
    m = scrape(exporter)
    assert (m[("edgeface_fps", ())], m[("edgeface_outbox_depth", ())]) == (1.0, 0)
    assert m[("edgeface_mqtt_connected", ())] == 0


def test_bound_to_localhost_only(exporter):
    addresses = [
        a[4][0]
        for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        if not a[4][0].startswith("127.")
    ]
    if not addresses:
        pytest.skip("this host has no non-loopback IPv4 address to try")
    with pytest.raises(OSError):
        socket.create_connection((addresses[0], exporter.port), timeout=1).close()


def test_port_in_use_is_a_one_line_error(exporter):
    from edgeface.errors import EdgefaceError

    with pytest.raises(EdgefaceError, match=r"metrics: cannot listen on 127.0.0.1:\d+"):
        MetricsExporter(port=exporter.port)


def test_two_cameras_each_labelled_and_summed(exporter):
    cameras = [
        {"name": "door", "outage": None, "fps": 7.0, "frames_dropped": 2, "reconnects": 1},
        {"name": "garage", "outage": "gone", "fps": 0.0, "frames_dropped": 5, "reconnects": 0},
    ]
    exporter.update({**STATUS, "camera": cameras[0], "cameras": cameras})
    m = scrape(exporter)
    assert m[("edgeface_camera_up", (("camera", "door"),))] == 1
    assert m[("edgeface_camera_up", (("camera", "garage"),))] == 0
    assert m[("edgeface_camera_fps", (("camera", "door"),))] == 7.0
    assert m[("edgeface_camera_outage", ())] == 1  # one of them is down
    assert m[("edgeface_camera_frames_dropped_total", ())] == 7
    assert m[("edgeface_camera_reconnects_total", ())] == 1
