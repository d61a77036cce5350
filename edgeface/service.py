"""The daemon: wires configuration, models, gallery, camera, engine and MQTT, and runs them.

Owns: the process lifecycle (signal handlers before anything else, so SIGTERM during start-up
stops cleanly and SIGHUP is queued; MQTT connected before the gallery loads, or `MqttOff` with
`mqtt.enabled: false`; READY once models and gallery are loaded; SIGTERM flush-and-exit; end of
a video file), the reload thread (SIGHUP and `cmd/reload`, applied whether or not frames are
flowing; what is live is `reload`'s; a refusal stays in `last_error` until a reload succeeds),
the heartbeat thread (systemd watchdog, retained status every `mqtt.status_interval`, presence
expiry), handing MQTT commands to `commands`, and degrading instead of dying: a camera that is gone (reopened with backoff, `camera.outage` in status), a
state directory that is full or read-only (events published live, the gallery without its
cache, the problem in `last_error`).
Never: per-frame face logic (that is `pipeline.engine`), wire formats (`types.Event`,
`publish`), or a file path taken from an MQTT command (commands take no paths at all).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from edgeface import __version__
from edgeface.analyzer import FaceAnalyzer
from edgeface.commands import COMMANDS, CommandTarget, answer
from edgeface.config import Config, load_config, read_password
from edgeface.errors import EdgefaceError
from edgeface.gallery.matcher import Matcher, Thresholds
from edgeface.gallery.store import Gallery, GalleryUpdate
from edgeface.gallery.watcher import GalleryWatcher
from edgeface.logsetup import add_secret
from edgeface.pipeline.capture import FrameSource, is_live_source, open_source
from edgeface.pipeline.engine import Engine, FrameResult
from edgeface.pipeline.tracker import Tracker, TrackerSettings
from edgeface.presence import Presence
from edgeface.publish import discovery
from edgeface.publish.mqtt import MqttPublisher
from edgeface.publish.offline import MqttOff
from edgeface.reload import plan_reload
from edgeface.stats import RollingStats
from edgeface.systemd import Notifier, ProgressWatchdog
from edgeface.types import Embedding, Event, Frame, ImageBGR
from edgeface.unknowns import UnknownStore, enrollment_crop

if TYPE_CHECKING:
    from edgeface.publish.metrics import MetricsExporter

log = logging.getLogger(__name__)

# A hung model call is declared after this long; below the unit's WatchdogSec (30 s).
STALL_TIMEOUT = 20.0
# On stop, queued events get this long to reach the broker; what is left stays in the outbox.
SHUTDOWN_FLUSH = 10.0
# ...of which at most this long is spent waiting for a lost connection to come back (a broker
# that is down for good must not hold up every stop by the whole flush time).
SHUTDOWN_RECONNECT_GRACE = 5.0


class Daemon:
    """One running daemon; `run()` blocks until SIGTERM, `stop_event`, or the end of a file.

    `notifier`, `stall_timeout` and `shutdown_flush` are parameters so tests can drive the
    systemd protocol and the hang detection in seconds instead of the production timeouts.
    """

    def __init__(
        self,
        cfg: Config,
        config_path: Path | None = None,
        *,
        notifier: Notifier | None = None,
        stall_timeout: float = STALL_TIMEOUT,
        shutdown_flush: float = SHUTDOWN_FLUSH,
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.stop_event = threading.Event()
        self.notifier = notifier if notifier is not None else Notifier()
        self.watchdog = ProgressWatchdog(self.notifier, stall_timeout)
        self.shutdown_flush = shutdown_flush
        self.started_at = time.time()
        self.stats = RollingStats()
        self.last_error: str | None = None
        self._reload_problem: str | None = None  # until a reload succeeds
        # Why the camera cannot be opened right now (the source's own `outage` covers a live
        # stream that drops; this covers a file or device that cannot be opened at all).
        self._camera_outage: str | None = None
        self._camera_recoveries = 0
        self._outbox_problem: str | None = None
        self._events_live = 0  # published without the durable outbox (it was unusable)
        # ...of which the broker was not connected either: those could not be delivered at all
        self._events_lost = 0
        self._reload_requested = threading.Event()
        self._latest_frame: Frame | None = None
        self._source: FrameSource | None = None
        self._gallery_update: GalleryUpdate | None = None
        self._matcher = Matcher.empty(self._thresholds())
        # Held while swapping the matcher or the gallery (watcher thread vs reload thread).
        self._gallery_lock = threading.Lock()
        self._published_people = discovery.PublishedPeople(cfg.state_path)
        self.metrics: MetricsExporter | None = None
        self.unknowns: UnknownStore | None = None
        # Open tracks' best crop so far (weight, embedding, crop), kept in memory only.
        self._track_best: dict[int, tuple[float, Embedding, ImageBGR]] = {}

    # --- set-up ------------------------------------------------------------------------------

    def _thresholds(self) -> Thresholds:
        rec = self.cfg.recognition
        return Thresholds.from_config(rec)

    def _prepare_state_dir(self) -> None:
        state = self.cfg.state_path
        try:
            state.mkdir(parents=True, exist_ok=True, mode=0o700)
            if state.stat().st_mode & 0o777 != 0o700:
                state.chmod(0o700)
        except OSError as exc:
            # A read-only or full disk must not stop recognition: the outbox and the cache
            # report their own problems and the daemon publishes live.
            self._report_error(f"state_dir {state}: {exc.strerror or exc}")

    def _open_gallery(self, analyzer: FaceAnalyzer) -> Gallery:
        try:
            return Gallery.from_config(self.cfg, analyzer)
        except (OSError, sqlite3.Error) as exc:
            # The embedding cache cannot be opened (read-only state_dir, disk full): photos are
            # analysed at every start instead, and the cache file is left as it was.
            self._report_error(
                f"gallery cache in {self.cfg.state_path} unusable, running without it: "
                f"{getattr(exc, 'strerror', None) or exc}"
            )
            return Gallery(
                Path(self.cfg.gallery.path), self.cfg.gallery, self._thresholds(), analyzer
            )

    def _start_optional_features(self) -> None:
        cfg = self.cfg
        if cfg.unknowns.enabled:
            self.unknowns = UnknownStore(
                cfg.state_path,
                cfg.unknowns.retention,
                cfg.unknowns.cluster_threshold or cfg.recognition.match_threshold,
                max_crops=cfg.unknowns.max_crops,
            )
        if cfg.metrics.enabled:
            from edgeface.publish.metrics import MetricsExporter  # needs the `metrics` extra

            self.metrics = MetricsExporter(cfg.metrics.port, cfg.metrics.host)
        self._publish_discovery()

    def _publish_discovery(self) -> None:
        """Home Assistant entities for this device; the retained topics of people who left the
        gallery (also while the daemon was stopped) are removed."""
        m = self.cfg.mqtt
        people = list(self._matcher.person_names)
        device = self.cfg.device
        update = self._gallery_update
        messages = self._published_people.update(
            people,
            device.id,
            m.topic_prefix,
            m.ha_prefix,
            update is not None and update.indexing.finished,
        )
        if m.ha_discovery:
            messages += discovery.discovery_messages(
                device.id,
                device.name,
                m.topic_prefix,
                [self.cfg.camera.name],
                people,
                m.ha_prefix,
                int(3 * m.status_interval),
            )
        for topic, payload in messages:
            self.publisher.publish_retained(topic, payload)

    def run(self) -> int:
        self._install_signals()  # first: a SIGTERM or SIGHUP during start-up must not kill us
        cfg = self.cfg
        log.info("edgeface %s starting", __version__)
        on = cfg.mqtt.enabled  # off: no password or certificate is even read
        add_secret(read_password(cfg.mqtt) if on else None)
        self._prepare_state_dir()
        self.notifier.status("loading models")
        self.analyzer = FaceAnalyzer.from_config(cfg)
        self.publisher: MqttPublisher | MqttOff = (
            MqttPublisher(cfg.mqtt, cfg.device.id, cfg.state_path)
            if on
            else MqttOff(cfg.state_path)
        )
        self.presence = Presence(self.publisher, cfg.camera.name, cfg.mqtt.presence_timeout)
        self.publisher.set_command_handler(self._on_command, commands=COMMANDS)
        self.publisher.start()
        self._publish_status()  # at once: sent as soon as the connection is up
        threads = []
        try:
            self.gallery = self._open_gallery(self.analyzer)
            self.notifier.status("loading gallery")
            self._on_gallery_update(self.gallery.start_refresh(time.time(), self.stop_event))
            if self.stop_event.is_set():
                log.info("stop requested during start-up: stopping")
                return 0
            self.watcher = self._follow(self.gallery)
            self._start_optional_features()
            self.engine = Engine(
                self.analyzer,
                lambda: self._matcher,
                Tracker(TrackerSettings(**dataclasses.asdict(cfg.tracking))),
                cfg.device.id,
            )
            for target in (self._heartbeat, self._reloader):
                threads.append(threading.Thread(target=target, name=target.__name__, daemon=True))
                threads[-1].start()
            self.notifier.ready(self._status_line())
            self._publish_status()  # with the gallery loaded
            log.info(
                "edgeface %s ready: camera %s, %d people enrolled, models %s",
                __version__,
                cfg.camera.source,
                len(self._matcher.person_names),
                self.analyzer.model_name,
            )
            self._pipeline_loop()
        finally:
            self._shutdown()
            for thread in threads:
                thread.join(timeout=5)
        return 0

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload_requested.set())

    def _follow(self, gallery: Gallery) -> GalleryWatcher:
        """A started watcher on `gallery`; its updates count only while it is the gallery."""

        def on_update(update: GalleryUpdate) -> None:
            if gallery is self.gallery:
                self._on_gallery_update(update)

        watcher = GalleryWatcher.from_gallery_config(gallery, on_update)
        watcher.start()
        return watcher

    # --- the pipeline thread -----------------------------------------------------------------

    def _pipeline_loop(self) -> None:
        backoff = 0.5
        cam = self.cfg.camera
        while not self.stop_event.is_set():
            try:
                self._source = open_source(
                    cam.source,
                    cam.name,
                    cam.fps_cap,
                    cam.loop,
                    cam.reconnect_max_backoff,
                    cam.realtime,
                    cam.picamera2,
                )
            except OSError as exc:
                self._camera_down(str(exc), backoff)
                backoff = min(backoff * 2, cam.reconnect_max_backoff)
                continue
            last_ts = time.time()
            for frame in self._source.frames(self.stop_event):
                if self._camera_outage is not None:
                    log.info("camera %s is back after: %s", cam.name, self._camera_outage)
                    self._camera_outage = None
                    self._camera_recoveries += 1
                    backoff = 0.5
                self._handle_frame(frame)
                last_ts = frame.timestamp
            self._publish(self.engine.finish(last_ts))
            vanished = self._source.stats.outage
            if vanished and not self.stop_event.is_set():
                # A video file that disappeared mid-run: like a camera unplugged, wait for it.
                self._camera_down(vanished, backoff)
                backoff = min(backoff * 2, cam.reconnect_max_backoff)
                continue
            finished_file = not (cam.loop or self._is_live() or self.stop_event.is_set())
            if finished_file:
                log.info("end of video file %s: flushing and exiting", cam.source)
                return

    def _camera_down(self, reason: str, backoff: float) -> None:
        if self._camera_outage is None:
            log.warning(
                "camera %s unavailable: %s; retrying with backoff", self.cfg.camera.name, reason
            )
        self._camera_outage = reason
        self._report_error(reason)
        # Waiting for a camera is not a hang: restarting the service would not bring it back.
        self.watchdog.alive(reason="waiting for camera")
        self.stop_event.wait(backoff)

    def _is_live(self) -> bool:
        return is_live_source(self.cfg.camera.source)

    def _handle_frame(self, frame: Frame) -> None:
        self._latest_frame = frame
        start = time.perf_counter()
        try:
            with self.watchdog.working():
                result = self.engine.process(frame)
        except Exception as exc:  # a bad frame must not end the daemon; the watchdog sees it
            log.exception("frame %d failed", frame.sequence)
            self._report_error(f"frame {frame.sequence}: {type(exc).__name__}: {exc}")
            return
        self.stats.add(time.time(), result, time.perf_counter() - start)
        if self.unknowns is not None:
            self._keep_unknowns(frame, result)
        if self.cfg.mqtt.snapshots:
            for event_id, face in result.best_faces.items():
                crop = cv2.cvtColor(face.aligned.crop_rgb, cv2.COLOR_RGB2BGR)
                ok, jpeg = cv2.imencode(".jpg", crop)
                if ok:
                    self.publisher.publish_snapshot(event_id, jpeg.tobytes())
        self._publish(result.events)

    def _keep_unknowns(self, frame: Frame, result: FrameResult) -> None:
        """Remember each open track's best-weighted crop; store it once the track is unknown."""
        assert self.unknowns is not None
        for tracked in result.tracked:
            kept = self._track_best.get(tracked.track_id)
            if kept is None or tracked.weight > kept[0]:
                crop = enrollment_crop(frame.image, tracked.face.face.box)
                self._track_best[tracked.track_id] = (tracked.weight, tracked.face.embedding, crop)

    def _unknown_event(self, event: Event) -> None:
        """Decided unknown: keep its best crop so far; a departure finalises and forgets it."""
        if self.unknowns is None:
            return
        best = self._track_best.get(event.track_id)
        if event.person is None and best is not None and event.type in ("unknown", "left"):
            weight, embedding, crop = best
            self.unknowns.add(event.track_id, embedding, crop, weight, event.ts)
        if event.type == "left":
            self._track_best.pop(event.track_id, None)

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            self.stats.events += 1
            self._unknown_event(event)
            try:
                durable = self.publisher.publish_event(event)
            except EdgefaceError as exc:
                self._report_error(str(exc))
            else:
                self._note_outbox(durable)
            log.info(
                "event %s track %d %s score %.3f",
                event.type,
                event.track_id,
                event.person or "-",
                event.score,
            )
            if event.person:
                self.presence.seen(event.person, event.ts)

    # --- status, heartbeat -------------------------------------------------------------------

    def _note_outbox(self, durable: bool) -> None:
        """Track whether events are stored durably; False means sent live (or, offline, lost)."""
        if durable:
            if self._outbox_problem is not None:
                log.info("outbox usable again; events are stored durably")
                self._outbox_problem = None
            return
        self._events_live += 1
        if not self.publisher.connected:
            self._events_lost += 1
        problem = (
            f"outbox unusable, events published live: {self.publisher.last_error or 'unknown'}"
        )
        if problem != self._outbox_problem:
            self._outbox_problem = problem
            self._report_error(problem)

    def _heartbeat(self) -> None:
        status_interval = self.cfg.mqtt.status_interval
        interval = min(self.notifier.watchdog_interval() or 5.0, 5.0, status_interval)
        next_status = time.time() + status_interval  # run() published one at READY
        while not self.stop_event.wait(interval):
            now = time.time()
            if self._current_outage() is not None:
                self.watchdog.alive(reason="waiting for camera")
            self.watchdog.tick()
            self.presence.expire()
            if now >= next_status - 0.01:  # (a wait may return a hair early)
                next_status += status_interval
                if next_status <= now:  # fell behind (a suspended machine): no burst
                    next_status = now + status_interval
                self._publish_status()
                if self.unknowns is not None:
                    self.unknowns.expire(now)
                self.notifier.status(self._status_line())

    def _publish_status(self) -> None:
        status = self.status()
        self.publisher.publish_status(status)
        if self.metrics is not None:
            self.metrics.update(status)

    def _report_error(self, message: str) -> None:
        if message != self.last_error:
            log.error("%s", message)
        self.last_error = message

    def _current_outage(self) -> str | None:
        source = self._source
        if self._camera_outage is not None:
            return self._camera_outage
        if source is None:
            return "starting"
        return source.stats.outage

    def _last_error(self) -> str | None:
        """Current problems first (outbox, MQTT), then the last one the daemon reported."""
        parts: list[str] = []
        problems = (self._outbox_problem, self.publisher.last_error, self._reload_problem)
        for part in (*problems, self.last_error):
            if part and part not in parts and not any(part in p for p in parts):
                parts.append(part)
        return "; ".join(parts)[:500] or None

    def status(self) -> dict[str, Any]:
        fps, faces_per_s = self.stats.rates()
        source = self._source
        update = self._gallery_update
        report = update.report if update else None
        return {
            "device": self.cfg.device.id,
            "version": __version__,
            "uptime": round(time.time() - self.started_at, 1),
            "fps": round(fps, 2),
            "faces_per_second": round(faces_per_s, 2),
            "latency_ms": self.stats.latency_ms(),
            "frames": self.stats.frames,
            "events": self.stats.events,
            "camera": {
                "name": self.cfg.camera.name,
                "outage": self._current_outage(),
                "frames_dropped": source.stats.frames_dropped if source else 0,
                "reconnects": self._camera_recoveries + (source.stats.reconnects if source else 0),
            },
            "gallery": {
                "version": update.version if update else None,
                "people": len(report.people) if report else 0,
                "templates": report.usable_templates if report else 0,
                "problems": [str(p) for p in report.problems][:20] if report else [],
                "indexing": dataclasses.asdict(update.indexing) if update else None,
            },
            "models": self.analyzer.model_name,
            "outbox_depth": self.publisher.outbox_depth,
            "outbox_dropped": self.publisher.outbox_dropped,
            "outbox_ok": self._outbox_problem is None,
            "events_live": self._events_live,
            "events_lost": self._events_lost,
            "mqtt_enabled": self.cfg.mqtt.enabled,
            "mqtt_connected": self.publisher.connected,
            "last_error": self._last_error(),
        }

    def _status_line(self) -> str:
        fps, _ = self.stats.rates()
        people = len(self._matcher.person_names)
        mqtt = f"outbox {self.publisher.outbox_depth}" if self.cfg.mqtt.enabled else "mqtt off"
        return f"{fps:.1f} fps, {people} people, {mqtt}"

    # --- gallery, reload, commands -----------------------------------------------------------

    def _on_gallery_update(self, update: GalleryUpdate) -> None:
        with self._gallery_lock:
            # An update computed before a threshold reload still gets the current thresholds.
            self._matcher = update.matcher.with_thresholds(self._thresholds())
            self._gallery_update = update
        log.info(
            "gallery %s: %d people, %d usable photos, %d problem(s)",
            update.version[:12],
            len(update.report.people),
            update.report.usable_templates,
            len(update.report.problems),
        )
        # Discovery first: a removed person's entity goes before its presence topic is emptied.
        self._publish_discovery()
        self.presence.enrolled(self._matcher.person_names)

    def _reloader(self) -> None:
        """The reload thread: SIGHUP and `cmd/reload` take effect even with no frames flowing."""
        while not self.stop_event.is_set():
            if self._reload_requested.wait(0.25) and not self.stop_event.is_set():
                self._reload()

    def _reload(self) -> None:
        self._reload_requested.clear()
        with self.notifier.reload("reloading configuration and gallery"):
            if self.config_path is not None:
                self._reload_config(self.config_path)
            self.watcher.request_refresh()

    def _reload_config(self, path: Path) -> None:
        """Apply what a reload may change live; a file that does not load changes nothing."""
        try:
            loaded = load_config(path)
        except EdgefaceError as exc:
            self._reload_problem = f"reload refused, keeping the running config: {exc}"
            log.error("%s", self._reload_problem)
            return
        self._reload_problem = None
        plan = plan_reload(self.cfg, loaded)
        if plan.restart:
            log.warning("reload: %s", plan.postponed())
        self.cfg = plan.config
        self.engine.tracker.settings = TrackerSettings(**dataclasses.asdict(self.cfg.tracking))
        if plan.section_changed("gallery"):
            self._reopen_gallery()
        with self._gallery_lock:
            self.gallery.thresholds = self._thresholds()
            self._matcher = self._matcher.with_thresholds(self._thresholds())
        log.info("reload: applied %s", plan.applied() or "no changed setting")

    def _reopen_gallery(self) -> None:
        """New gallery settings: reopen it (answers come from the embedding cache) and follow
        it with them; the matcher in use stays until the new gallery's first update."""
        self.watcher.stop()
        old = self.gallery
        self.gallery = self._open_gallery(self.analyzer)
        if old.cache is not None:
            old.cache.close()
        self.watcher = self._follow(self.gallery)

    def _on_command(self, name: str, payload: bytes) -> dict[str, Any]:
        """Answer a command (`edgeface.commands`); the publisher has checked name and JSON."""
        target = CommandTarget(
            request_reload=self._reload_requested.set,
            status=self.status,
            latest_frame=lambda: self._latest_frame,
            snapshots_enabled=lambda: self.cfg.mqtt.snapshots,
            publish_snapshot=self.publisher.publish_snapshot,
        )
        return answer(target, name, payload)

    def _shutdown(self) -> None:
        self.notifier.stopping("flushing events")
        self.stop_event.set()
        watcher: GalleryWatcher | None = getattr(self, "watcher", None)  # start-up may stop early
        if watcher is not None:
            watcher.stop()
        deadline = time.monotonic() + self.shutdown_flush
        # publisher.stop flushes only while connected; a broker that dropped seconds ago is
        # usually back within paho's first reconnect delays, so give it a short grace first.
        grace = time.monotonic() + min(self.shutdown_flush, SHUTDOWN_RECONNECT_GRACE)
        while (
            self.publisher.outbox_depth > 0
            and not self.publisher.connected
            and time.monotonic() < grace
        ):
            time.sleep(0.1)
        # The last word on frames and events, also for a run shorter than status_interval, and
        # nobody stays present once we are gone (before `offline`, on the same connection).
        self._publish_status()
        self.presence.all_absent()
        self.publisher.stop(flush_timeout=max(0.0, deadline - time.monotonic()))
        if self.metrics is not None:
            self.metrics.close()
        log.info("stopped after %d frames, %d events", self.stats.frames, self.stats.events)


def run_daemon(config_path: Path | None, cfg: Config) -> int:
    """The `edgeface run` entry point: blocks until the daemon stops; returns the exit code."""
    return Daemon(cfg, config_path).run()
