"""Faults the daemon must survive without losing a confirmed event (issue 6).

Every test runs the real daemon (real models, a real mosquitto) on a looping video of
pip-shipped faces, except the watchdog test, which runs the Daemon in-process so inference can
be made to hang. EDGEFACE_SOAK=1 raises the broker kill/restart cycles from 3 to 20.
"""

from __future__ import annotations

import hashlib
import inspect
import random
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import pytest
from broker import free_port
from daemon_support import (
    EVENTS,
    SOAK,
    DaemonProcess,
    MjpegCamera,
    Mount,
    NotifySocket,
    Scene,
    assert_at_least_once_in_order,
    assert_once_in_order,
    fill_disk,
    latest_status,
    make_scene,
    outbox_ids,
    received_events,
    received_ids,
    sqlite_check,
    wait_status,
    write_config,
)

from edgeface.config import load_config
from edgeface.pipeline.engine import Engine, FrameResult
from edgeface.publish.mqtt import MqttPublisher
from edgeface.service import Daemon
from edgeface.systemd import Notifier
from edgeface.types import Frame

BROKER_CYCLES = 20 if SOAK else 3
# Unacknowledged events the daemon's publisher keeps in flight: at most this many can be
# redelivered after one outage.
MAX_INFLIGHT = inspect.signature(MqttPublisher).parameters["max_inflight"].default


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, analyzer: Any) -> Scene:
    return make_scene(tmp_path_factory.mktemp("faults-scene"), analyzer)


def _copy_video(scene: Scene, tmp: Path) -> Path:
    video = tmp / "camera.avi"
    shutil.copyfile(scene.video, video)
    return video


def _recorder_connected(recorder: Any) -> bool:
    return bool(recorder._connected)


# -- broker ------------------------------------------------------------------------------------


def test_broker_killed_and_restarted_at_random_moments(
    tmp_path: Path, scene: Scene, mosquitto: Any, recorder_factory: Any
) -> None:
    """Broker SIGKILLed or stopped while events are due, N times: every event the daemon
    produced arrives, in the order produced, in order per track; a message in flight at an
    outage may arrive again after it (same id and bytes, before anything newer), nothing else
    twice; and the outbox is empty at the end."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    recorder = recorder_factory(mosquitto, EVENTS)
    # A SIGKILLed broker comes back with what it last saved; save the recorder's subscription
    # now, or events sent before the recorder has subscribed again would reach no one.
    mosquitto.restart()
    config = write_config(tmp_path, scene.video, scene.gallery, mosquitto.port)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_events(1, timeout=60)
        for cycle in range(BROKER_CYCLES):
            # Messages the broker queued for a disconnected subscriber die with a SIGKILLed
            # broker (that is the broker's loss, not ours): kill only with the recorder on.
            recorder.wait_until(lambda: _recorder_connected(recorder), 20, "recorder back")
            before = len(daemon.logged_events())
            time.sleep(rng.uniform(0.3, 2.5))
            if rng.random() < 0.5:
                mosquitto.kill()
            else:
                mosquitto.stop()
            time.sleep(rng.uniform(0.2, 3.0))
            mosquitto.start()
            # events were due during the outage: the daemon kept producing them
            daemon.wait_events(before + 1, timeout=30)
            assert daemon.alive(), f"cycle {cycle} (seed {seed})"
        recorder.wait_until(lambda: _recorder_connected(recorder), 20, "recorder back")
        assert daemon.terminate() == 0, daemon.log()[-3000:]
    finally:
        daemon.close()
    logged = daemon.logged_events()
    recorder.wait_until(
        lambda: len(received_ids(recorder)) >= len(logged), 30, f"{len(logged)} distinct events"
    )
    time.sleep(0.5)  # a duplicate would arrive now
    assert_at_least_once_in_order(recorder.on(EVENTS), logged, BROKER_CYCLES, MAX_INFLIGHT)
    assert sqlite_check(tmp_path / "state" / "outbox.sqlite3", "outbox") == 0


# -- daemon SIGKILL ----------------------------------------------------------------------------


def test_daemon_sigkill_keeps_outbox_and_cache(
    tmp_path: Path, scene: Scene, mosquitto: Any, recorder_factory: Any
) -> None:
    """SIGKILL mid-stream with the broker down: both databases pass integrity_check, every event
    logged before the kill is in the outbox, and the next run delivers them first, in order."""
    mosquitto.stop()
    config = write_config(tmp_path, scene.video, scene.gallery, mosquitto.port)
    state = tmp_path / "state"
    first = DaemonProcess(config, tmp_path / "first.log")
    try:
        first.wait_events(6, timeout=60)
        time.sleep(random.uniform(0, 1.0))  # somewhere mid-frame
        first.kill()
    finally:
        first.close()
    logged = first.logged_events()
    rows = sqlite_check(state / "outbox.sqlite3", "outbox")
    photos = len(list(scene.gallery.rglob("*.jpg")))
    cached = sqlite_check(state / "gallery-cache.sqlite3", "analyses")
    assert cached == photos, "the embedding cache lost rows"
    # an event is logged after its row commits, so at most the one in flight is unlogged
    assert len(logged) <= rows <= len(logged) + 1
    queued = outbox_ids(state)

    mosquitto.start()
    recorder = recorder_factory(mosquitto, EVENTS)
    second = DaemonProcess(config, tmp_path / "second.log")
    try:
        recorder.wait_for_count(EVENTS, len(queued) + 1, timeout=60)
        assert second.terminate() == 0, second.log()[-3000:]
    finally:
        second.close()
    time.sleep(0.5)
    received = [e["id"] for e in received_events(recorder)]
    assert received[: len(queued)] == queued, "pre-kill events first, in order"
    assert len(received) == len(set(received)), "none twice"
    assert sqlite_check(state / "gallery-cache.sqlite3", "analyses") == cached
    assert sqlite_check(state / "outbox.sqlite3", "outbox") == 0


# -- camera ------------------------------------------------------------------------------------


def test_video_file_replaced_removed_and_restored(
    tmp_path: Path, scene: Scene, mosquitto: Any, recorder_factory: Any
) -> None:
    video = _copy_video(scene, tmp_path)
    recorder = recorder_factory(mosquitto, "edgeface/dev1/#")
    config = write_config(
        tmp_path, video, scene.gallery, mosquitto.port, camera={"reconnect_max_backoff": 1}
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_events(1, timeout=60)
        # replaced under the daemon (atomically, like a sync tool): nothing to notice
        replacement = tmp_path / "new.avi"
        shutil.copyfile(scene.video, replacement)
        replacement.replace(video)
        # removed: the current pass ends, then the camera is reported missing
        video.unlink()
        status = wait_status(
            recorder,
            lambda s: "no such video file" in str(s["camera"]["outage"]),
            60,
            "camera.outage in status",
        )
        assert "no such video file" in status["last_error"]
        time.sleep(2.0)
        assert daemon.alive()
        before = len(daemon.logged_events())
        shutil.copyfile(scene.video, video)
        wait_status(recorder, lambda s: s["camera"]["outage"] is None, 30, "outage cleared")
        daemon.wait_events(before + 2, timeout=60)
        assert latest_status(recorder)["camera"]["reconnects"] >= 1  # type: ignore[index]
        assert daemon.terminate() == 0
    finally:
        daemon.close()
    log = daemon.log()
    assert "Traceback" not in log
    assert "is back after" in log


def test_mjpeg_stream_stops_and_restarts(
    tmp_path: Path, scene: Scene, mosquitto: Any, recorder_factory: Any
) -> None:
    """An HTTP MJPEG camera goes away and comes back on the same port: the daemon reports the
    outage in status, keeps running, reconnects and recognises again."""
    camera = MjpegCamera(scene.video)
    camera.start()
    recorder = recorder_factory(mosquitto, "edgeface/dev1/#")
    config = write_config(
        tmp_path, camera.url, scene.gallery, mosquitto.port, camera={"reconnect_max_backoff": 1}
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_events(1, timeout=60)
        camera.stop()
        # Not just any outage: a status from before the stream opened says "starting".
        wait_status(
            recorder, lambda s: "camera.source" in (s["camera"]["outage"] or ""), 30, "outage"
        )
        time.sleep(3.0)  # several backoff rounds against a refused connection
        assert daemon.alive()
        before = len(daemon.logged_events())
        camera.start()
        wait_status(
            recorder,
            lambda s: s["camera"]["outage"] is None and s["camera"]["reconnects"] >= 1,
            30,
            "reconnected",
        )
        daemon.wait_events(before + 1, timeout=60)
        assert daemon.terminate() == 0
    finally:
        daemon.close()
        camera.stop()
    assert "Traceback" not in daemon.log()


# -- disk --------------------------------------------------------------------------------------


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def test_read_only_state_dir(
    tmp_path: Path, scene: Scene, mosquitto: Any, recorder_factory: Any
) -> None:
    """State dir read-only (a read-only bind mount): the daemon starts, recognises and publishes
    live, says why in status, leaves stored bytes untouched; a later writable run delivers the
    events that were queued before."""
    state = tmp_path / "state"
    mosquitto.stop()
    config = write_config(tmp_path, scene.video, scene.gallery, mosquitto.port)
    first = DaemonProcess(config, tmp_path / "first.log")
    try:
        first.wait_events(2, timeout=60)
        assert first.terminate() == 0
    finally:
        first.close()
    queued = outbox_ids(state)
    assert queued
    before = _digests(state)
    mosquitto.start()
    recorder = recorder_factory(mosquitto, "edgeface/dev1/#")
    mount = Mount.read_only(state)
    try:
        second = DaemonProcess(config, tmp_path / "second.log")
        try:
            second.wait_events(2, timeout=60)
            # (statuses come from the start now: wait for one after the live events)
            status = wait_status(recorder, lambda s: s["events_live"] >= 2, 30, "events_live")
            assert "outbox" in status["last_error"] and "Read-only" in status["last_error"]
            assert status["outbox_ok"] is False and status["events_live"] >= 2
            assert status["events_lost"] == 0
            assert status["gallery"]["people"] == 1
            live = len(second.logged_events())
            recorder.wait_for_count(EVENTS, live, timeout=20)
            assert second.terminate() == 0
        finally:
            second.close()
    finally:
        mount.undo()
    assert _digests(state) == before, "stored files changed while read-only"
    assert "Traceback" not in second.log()
    live_ids = {e["id"] for e in received_events(recorder)}
    assert not live_ids & set(queued)
    recorder.clear()
    third = DaemonProcess(config, tmp_path / "third.log")
    try:
        recorder.wait_for_count(EVENTS, len(queued), timeout=60)
        assert third.terminate() == 0
    finally:
        third.close()
    assert [e["id"] for e in received_events(recorder)][: len(queued)] == queued


def test_disk_full_keeps_publishing(
    tmp_path: Path, scene: Scene, mosquitto: Any, recorder_factory: Any
) -> None:
    """State dir on a small tmpfs that a filler file makes full mid-run: events keep arriving
    (through the outbox while sqlite can reuse its pages, live once it cannot), both databases
    stay intact, and nothing produced is lost."""
    state = tmp_path / "state"
    mount = Mount.tmpfs(state, "4m")
    recorder = recorder_factory(mosquitto, "edgeface/dev1/#")
    config = write_config(tmp_path, scene.video, scene.gallery, mosquitto.port)
    try:
        daemon = DaemonProcess(config, tmp_path / "daemon.log")
        try:
            daemon.wait_events(2, timeout=60)
            cached = sqlite_check(state / "gallery-cache.sqlite3", "analyses")
            filler = fill_disk(state)
            full_at = len(daemon.logged_events())
            daemon.wait_events(full_at + 6, timeout=90)
            status = wait_status(recorder, lambda s: not s["outbox_ok"], 20, "outbox problem")
            assert "disk is full" in status["last_error"] and status["events_live"] > 0
            filler.unlink()
            freed_at = len(daemon.logged_events())
            daemon.wait_events(freed_at + 2, timeout=60)
            wait_status(recorder, lambda s: s["outbox_ok"], 20, "outbox usable again")
            assert daemon.terminate() == 0
        finally:
            daemon.close()
        logged = daemon.logged_events()
        recorder.wait_for_count(EVENTS, len(logged), timeout=30)
        time.sleep(0.5)
        received = received_events(recorder)
        assert_once_in_order(received, logged)
        assert sqlite_check(state / "gallery-cache.sqlite3", "analyses") == cached
        # A delivery acknowledged while the disk was full cannot be deleted from the outbox
        # (sqlite needs space to delete): such rows stay and are sent again at the next start,
        # a duplicate by id that subscribers drop. Never an event that was not delivered.
        leftover = outbox_ids(state)
        assert set(leftover) <= {e["id"] for e in received}, "undelivered rows left behind"
        assert "Traceback" not in daemon.log()
    finally:
        mount.undo()


# -- hung inference: the systemd watchdog ------------------------------------------------------


def test_hung_inference_starves_the_watchdog_but_a_camera_outage_does_not(
    tmp_path: Path, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process daemon with a fake notify socket: WATCHDOG=1 flows while frames are processed,
    stops once a frame has hung for longer than the stall timeout, resumes when it finishes, and
    keeps flowing while the camera is gone (an outage is not a hang)."""
    hang = threading.Event()
    release = threading.Event()
    hung_at: list[float] = []  # when a frame really began to hang
    real_process = Engine.process

    def process(self: Engine, frame: Frame) -> FrameResult:
        if hang.is_set():
            hung_at.append(time.monotonic())
            release.wait(30)
        return real_process(self, frame)

    monkeypatch.setattr(Engine, "process", process)
    video = _copy_video(scene, tmp_path)
    cfg = load_config(
        write_config(
            tmp_path, video, scene.gallery, free_port(), camera={"reconnect_max_backoff": 0.5}
        )
    )
    sock = NotifySocket(tmp_path / "notify.sock")
    notifier = Notifier(
        {"NOTIFY_SOCKET": str(sock.path), "WATCHDOG_USEC": "400000"}, use_library=False
    )
    daemon = Daemon(cfg, notifier=notifier, stall_timeout=1.0, shutdown_flush=0.5)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()

    def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline and thread.is_alive(), what
            time.sleep(0.05)

    try:
        wait_for("no frames", lambda: daemon.stats.frames >= 10)
        t0 = time.monotonic()
        wait_for("not fed while frames flow", lambda: sock.count("WATCHDOG=1", t0) >= 3)

        hang.set()
        wait_for("never declared stalled", lambda: sock.count("STATUS=stalled", 0) == 1)
        stalled_at = sock.first("STATUS=stalled")
        assert hung_at and stalled_at - hung_at[0] >= 1.0, "stalled before the stall timeout"
        time.sleep(1.0)  # five watchdog intervals: a wrong ping would arrive now
        assert sock.count("WATCHDOG=1", stalled_at) == 0, "fed during a hung inference"
        assert sock.count("STATUS=stalled", 0) == 1

        hang.clear()
        release.set()
        resumed = time.monotonic()
        wait_for("not fed again after the hang", lambda: sock.count("WATCHDOG=1", resumed) >= 3)

        video.unlink()
        wait_for("camera outage never noticed", lambda: daemon.status()["camera"]["outage"])
        outage, frames = time.monotonic(), daemon.stats.frames
        # Past two stall timeouts with no frame, only the outage can keep the watchdog fed.
        wait_for(
            "not fed during a camera outage",
            lambda: sock.count("WATCHDOG=1", outage + 2.0) >= 5,
        )
        assert daemon.stats.frames == frames, "the file is gone: no frames"
        assert daemon.status()["camera"]["outage"]
    finally:
        release.set()
        daemon.stop_event.set()
        thread.join(30)
        sock.close()
    assert not thread.is_alive()


def test_disk_full_while_the_gallery_changes_keeps_the_cache(
    tmp_path: Path, scene: Scene, mosquitto: Any
) -> None:
    """A photo added while the state disk is full must not cost the stored embedding cache."""
    state = tmp_path / "state"
    mount = Mount.tmpfs(state, "4m")
    gallery = tmp_path / "gallery"
    shutil.copytree(scene.gallery, gallery)
    config = write_config(tmp_path, scene.video, gallery, mosquitto.port)
    try:
        daemon = DaemonProcess(config, tmp_path / "daemon.log")
        try:
            daemon.wait_events(1, timeout=60)
            cached = sqlite_check(state / "gallery-cache.sqlite3", "analyses")
            filler = fill_disk(state)
            person = next(p for p in gallery.iterdir() if p.is_dir())
            photo = next(person.glob("*.jpg"))
            added = person / "added.png"
            cv2.imwrite(str(added), cv2.imread(str(photo)))
            daemon.wait_for(lambda: "4 usable photos" in daemon.log(), 15, "the new photo used")
            filler.unlink()
            assert daemon.terminate() == 0
        finally:
            daemon.close()
        assert not list(state.glob("*.damaged*")), daemon.log()[-2000:]
        assert "Traceback" not in daemon.log()
        assert sqlite_check(state / "gallery-cache.sqlite3", "analyses") >= cached
    finally:
        mount.undo()
