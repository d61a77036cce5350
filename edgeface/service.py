"""The daemon: the composition root that builds the parts from the config and connects them.

Owns: the process lifecycle only: signal handlers before anything else (SIGTERM during start-up
stops cleanly, SIGHUP is queued), MQTT connected before the gallery loads (or `MqttOff` with
`mqtt.enabled: false`), READY once models and gallery are loaded, the order of a stop (flush events, status, presence absent, `offline`), and
which part gets which callable. A frame's walk: `pipeline.cameras` (source, one thread per
camera) -> `pipeline.engine` -> `sinks` (MQTT, presence, unknown visitors, snapshots, stats);
around it `gallery.live`, `reloader`, `heartbeat`, `commands` and `status`, each in its module.
Never: per-frame logic, a wire format, a command's rules, or a status figure of its own.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeface import __version__
from edgeface.analyzer import FaceAnalyzer
from edgeface.commands import CommandWorker
from edgeface.config import Config, read_password
from edgeface.files import make_private_dir
from edgeface.gallery.live import LiveGallery
from edgeface.heartbeat import Heartbeat
from edgeface.logsetup import add_secret
from edgeface.pipeline.cameras import Cameras
from edgeface.pipeline.tracker import TrackerSettings
from edgeface.presence import Presence
from edgeface.problems import Problems
from edgeface.publish.announce import DiscoveryAnnouncer
from edgeface.publish.offline import publisher_for
from edgeface.reload import ReloadPlan
from edgeface.reloader import Reloader
from edgeface.sinks import EventPublisher, Fanout, PresenceSink, Sink, Snapshots, UnknownVisitors
from edgeface.stats import RollingStats
from edgeface.status import StatusReport
from edgeface.systemd import Notifier
from edgeface.unknowns import UnknownStore

log = logging.getLogger(__name__)

# A hung model call is declared after this long; below the unit's WatchdogSec (30 s).
STALL_TIMEOUT = 20.0
# On stop, queued events get this long to reach the broker; what is left stays in the outbox.
SHUTDOWN_FLUSH = 10.0
# ...of which at most this long is spent waiting for a lost connection to come back (a broker
# that is down for good must not hold up every stop by the whole flush time).
SHUTDOWN_RECONNECT_GRACE = 5.0


class Daemon:
    """One running daemon; `run()` blocks until SIGTERM, `stop_event`, or the end of its files.

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
        self.stop_event = threading.Event()
        self.notifier = notifier if notifier is not None else Notifier()
        self.stall_timeout, self.shutdown_flush = stall_timeout, shutdown_flush
        self.problems = Problems()
        self.stats = RollingStats()  # every camera's frames and events
        self.reloader = Reloader(cfg, config_path, self._apply, self.notifier)
        self.metrics: Any = None
        self.unknowns: UnknownStore | None = None

    def run(self) -> int:
        self._install_signals()  # first: a SIGTERM or SIGHUP during start-up must not kill us
        cfg = self.cfg
        log.info("edgeface %s starting", __version__)
        on = cfg.mqtt.enabled  # off: no password or certificate is even read
        add_secret(read_password(cfg.mqtt) if on else None)
        self._prepare_state_dir()
        self.notifier.status("loading models")
        self.analyzer = FaceAnalyzer.from_config(cfg)
        self.publisher = publisher_for(cfg)
        names = [camera.name for camera in cfg.all_cameras]
        # Before a person's first sighting, presence names the camera only when there is one.
        only = names[0] if len(names) == 1 else None
        self.presence = Presence(self.publisher, only, cfg.mqtt.presence_timeout)
        self.announcer = DiscoveryAnnouncer(self.publisher, cfg, names)
        self.gallery = LiveGallery(cfg, self.analyzer, self.problems, self._enrolled)
        self.events = EventPublisher(self.publisher, self.problems)
        self.snapshots = Snapshots(self.publisher, cfg.mqtt.snapshots, names)
        self.cameras = Cameras.from_config(
            cfg,
            self.analyzer,
            self.gallery.matcher,
            Fanout(self._sinks(), self.problems),
            self.problems,
            self.stop_event,
            self.stall_timeout,
        )
        self.report = StatusReport(
            cfg.device.id,
            self.analyzer.model_name,
            self.stats,
            self.cameras,
            self.gallery,
            self.events,
            self.problems,
            self.reloader,
        )
        actions = {"snapshot": self.snapshots.command, "status": self.report.command}
        self.commands = CommandWorker(
            {**actions, "reload": self.reloader.command}, self.publisher.publish_reply
        )
        self.commands.start()
        self.publisher.command_sink = self.commands.submit
        self.publisher.start()
        self._publish_status()  # at once: sent as soon as the connection is up
        threads: list[threading.Thread] = []
        try:
            self.notifier.status("loading gallery")
            self.gallery.load(self.stop_event)
            if self.stop_event.is_set():
                log.info("stop requested during start-up: stopping")
                return 0
            if cfg.metrics.enabled:
                from edgeface.publish.metrics import MetricsExporter  # the `metrics` extra

                self.metrics = MetricsExporter(cfg.metrics.port, cfg.metrics.host)
            for target in (self._heartbeat().run, self.reloader.run):
                threads.append(
                    threading.Thread(target=target, args=(self.stop_event,), daemon=True)
                )
                threads[-1].start()
            self.notifier.ready(self.report.line())
            self._publish_status()  # with the gallery loaded
            log.info(
                "edgeface %s ready: camera %s, %d people enrolled, models %s",
                __version__,
                ", ".join(camera.source for camera in cfg.all_cameras),
                len(self.gallery.people),
                self.analyzer.model_name,
            )
            self.cameras.run()
        finally:
            self._shutdown()
            for thread in threads:
                thread.join(timeout=5)
        return 0

    def _prepare_state_dir(self) -> None:
        try:
            make_private_dir(self.cfg.state_path)
        except OSError as exc:
            # A read-only or full disk must not stop recognition: the outbox and the cache
            # report their own problems and the daemon publishes live.
            self.problems.report(f"state_dir {self.cfg.state_path}: {exc.strerror or exc}")

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reloader.request())

    def _sinks(self) -> list[Sink]:
        """In this order: figures, unknown crops, snapshots, MQTT, presence."""
        cfg = self.cfg
        sinks: list[Sink] = [self.stats]
        if cfg.unknowns.enabled:
            self.unknowns = UnknownStore(
                cfg.state_path,
                cfg.unknowns.retention,
                cfg.unknowns.cluster_threshold or cfg.recognition.match_threshold,
                max_crops=cfg.unknowns.max_crops,
            )
            sinks.append(UnknownVisitors(self.unknowns))
        return [*sinks, self.snapshots, self.events, PresenceSink(self.presence)]

    def _heartbeat(self) -> Heartbeat:
        every_status: list[Callable[[float], object]] = [lambda _now: self._publish_status()]
        if self.unknowns is not None:
            every_status.append(self.unknowns.expire)
        every_status.append(lambda _now: self.notifier.status(self.report.line()))
        return Heartbeat(
            self.notifier,
            self.cameras.problem,
            self.cfg.mqtt.status_interval,
            [self.presence.expire],
            every_status,
        )

    def _apply(self, plan: ReloadPlan | None) -> None:
        """A reload's live part: tracking settings for every camera, then the gallery."""
        self.cfg = self.reloader.cfg
        settings = TrackerSettings(**dataclasses.asdict(self.cfg.tracking))
        for loop in self.cameras.loops:
            loop.engine.tracker.settings = settings
        self.gallery.reconfigure(self.cfg, plan is not None and plan.section_changed("gallery"))

    def _enrolled(self, people: list[str], complete: bool) -> None:
        # Discovery first: a removed person's entity goes before its presence topic is emptied.
        self.announcer.people(people, complete)
        self.presence.enrolled(people)

    def status(self) -> dict[str, Any]:
        return self.report.report()

    def _publish_status(self) -> None:
        status = self.status()
        self.publisher.publish_status(status)
        if self.metrics is not None:
            self.metrics.update(status)

    def _shutdown(self) -> None:
        self.notifier.stopping("flushing events")
        self.stop_event.set()
        self.gallery.stop()
        deadline = time.monotonic() + self.shutdown_flush
        # publisher.stop flushes only while connected; a broker that dropped seconds ago is
        # usually back within paho's first reconnect delays, so give it a short grace first.
        grace = time.monotonic() + min(self.shutdown_flush, SHUTDOWN_RECONNECT_GRACE)
        publisher = self.publisher
        while publisher.outbox_depth > 0 and not publisher.connected and time.monotonic() < grace:
            time.sleep(0.1)
        # The last word on frames and events, also for a run shorter than status_interval, and
        # nobody stays present once we are gone (before `offline`, on the same connection).
        self._publish_status()
        self.presence.all_absent()
        publisher.stop(flush_timeout=max(0.0, deadline - time.monotonic()))
        self.commands.stop()
        if self.metrics is not None:
            self.metrics.close()
        log.info("stopped after %d frames, %d events", self.stats.frames, self.stats.events)


def run_daemon(config_path: Path | None, cfg: Config) -> int:
    """The `edgeface run` entry point: blocks until the daemon stops; returns the exit code."""
    return Daemon(cfg, config_path).run()
