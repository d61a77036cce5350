"""Optional Prometheus metrics: the figures of the retained `status`, served over HTTP.

Owns: one private prometheus-client registry and its HTTP server (bound to 127.0.0.1 unless
told otherwise), and the mapping from the daemon's status dict to metric families. The status
is read at scrape time from the last snapshot handed to `update`, so the exported figures are
exactly the ones `status` publishes.

Never: a hard dependency (prometheus-client is the optional `metrics` extra, imported only when
an exporter is built), global state (prometheus-client's default registry is not used), or work
on the pipeline thread beyond storing a reference.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from edgeface.errors import EdgefaceError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9420


class MetricsExporter:
    """`update(status)` from the heartbeat; `close()` at shutdown. Port 0 picks a free port."""

    def __init__(self, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError as exc:
            raise EdgefaceError(
                "metrics.enabled needs prometheus-client: pip install 'edgeface[metrics]'"
            ) from exc
        self._lock = threading.Lock()
        self._status: Mapping[str, Any] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StatusCollector(self._snapshot))
        try:
            self._server, self._thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise EdgefaceError(
                f"metrics: cannot listen on {host}:{port} ({exc.strerror or exc})"
            ) from exc
        self.host = host
        self.port = int(self._server.server_address[1])

    def update(self, status: Mapping[str, Any]) -> None:
        with self._lock:
            self._status = status

    def _snapshot(self) -> Mapping[str, Any] | None:
        with self._lock:
            return self._status

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _StatusCollector:
    """Builds the metric families from the latest status on every scrape."""

    def __init__(self, snapshot: Any) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Any]:
        return []  # metric names depend on the status; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            InfoMetricFamily,
        )

        status = self._snapshot()
        if not status:
            return
        cameras = status.get("cameras") or [status.get("camera") or {}]
        camera = {  # every camera at once: for one camera, its own figures
            "name": ",".join(str(c.get("name", "")) for c in cameras),
            "outage": any(c.get("outage") for c in cameras),
            "frames_dropped": sum(c.get("frames_dropped") or 0 for c in cameras),
            "reconnects": sum(c.get("reconnects") or 0 for c in cameras),
        }
        gallery = status.get("gallery") or {}
        info = InfoMetricFamily("edgeface", "Device, version and models")
        info.add_metric(
            [],
            {
                "device": str(status.get("device", "")),
                "version": str(status.get("version", "")),
                "models": str(status.get("models", "")),
                "camera": str(camera.get("name", "")),
            },
        )
        yield info
        gallery_info = InfoMetricFamily(
            "edgeface_gallery", "Gallery content hash the device matches against"
        )
        gallery_info.add_metric([], {"version": str(gallery.get("version") or "")})
        yield gallery_info

        gauges = (
            ("edgeface_uptime_seconds", "Seconds since the daemon started", status.get("uptime")),
            ("edgeface_fps", "Frames processed per second (recent window)", status.get("fps")),
            (
                "edgeface_faces_per_second",
                "Faces detected per second (recent window)",
                status.get("faces_per_second"),
            ),
            ("edgeface_gallery_people", "People enrolled", gallery.get("people")),
            ("edgeface_gallery_templates", "Usable gallery photos", gallery.get("templates")),
            (
                "edgeface_gallery_problems",
                "Gallery entries that cannot be used (first 20)",
                len(gallery.get("problems") or []),
            ),
            ("edgeface_outbox_depth", "Events waiting in the outbox", status.get("outbox_depth")),
            (
                "edgeface_mqtt_enabled",
                "0 when mqtt.enabled is false (nothing is sent)",
                int(status.get("mqtt_enabled", True)),
            ),
            (
                "edgeface_mqtt_connected",
                "1 while connected to the broker",
                int(bool(status.get("mqtt_connected"))),
            ),
            (
                "edgeface_camera_outage",
                "1 while a camera is unavailable or starting",
                int(bool(camera.get("outage"))),
            ),
        )
        for name, text, value in gauges:
            if value is not None:
                yield GaugeMetricFamily(name, text, value=float(value))

        up = GaugeMetricFamily(
            "edgeface_camera_up", "1 while the camera delivers frames", labels=["camera"]
        )
        fps = GaugeMetricFamily(
            "edgeface_camera_fps", "Frames processed per second per camera", labels=["camera"]
        )
        for each in cameras:
            name = str(each.get("name", ""))
            up.add_metric([name], 0.0 if each.get("outage") else 1.0)
            fps.add_metric([name], float(each.get("fps") or 0.0))
        yield up
        yield fps

        latency = GaugeMetricFamily(
            "edgeface_stage_latency_seconds",
            "Median per-stage time over the recent window",
            labels=["stage"],
        )
        for stage, ms in sorted((status.get("latency_ms") or {}).items()):
            latency.add_metric([stage], float(ms) / 1000.0)
        yield latency

        counters = (
            ("edgeface_frames", "Frames processed since start", status.get("frames")),
            ("edgeface_events", "Events published since start", status.get("events")),
            (
                "edgeface_outbox_dropped",
                "Events dropped because the outbox was full",
                status.get("outbox_dropped"),
            ),
            (
                "edgeface_camera_frames_dropped",
                "Camera frames dropped",
                camera.get("frames_dropped"),
            ),
            ("edgeface_camera_reconnects", "Camera reconnects", camera.get("reconnects")),
        )
        for name, text, value in counters:
            if value is not None:
                # prometheus-client appends `_total` to counter names.
                yield CounterMetricFamily(name, text, value=float(value))
