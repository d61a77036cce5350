"""Helpers for the fault, soak and security tests (no tests here).

Owns: a daemon subprocess with its log in a file (`DaemonProcess`), the event lines it logs,
its resident memory / fd / thread figures from /proc, a looping scene built from pip-shipped
faces, a fake systemd notify socket, an MJPEG-over-HTTP camera served by the test, and the
checks shared by the tests (delivered exactly once by id, or at least once across broker
outages; in order per track).
Never: touches anything outside the test's temporary directory, or the system mosquitto.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from broker import Received

from edgeface.errors import EdgefaceError
from edgeface.publish.schema import validate_event
from edgeface.samples import (
    Appearance,
    compose_video,
    enrollment_photos,
    head_patch,
    packaged_faces,
)

DEVICE = "dev1"
EVENTS = f"edgeface/{DEVICE}/events"
STATUS = f"edgeface/{DEVICE}/status"
SOAK = os.environ.get("EDGEFACE_SOAK") == "1"
_EVENT_LINE = re.compile(r"edgeface\.sinks: event (\w+) track (\d+) .*? score")


@dataclass(frozen=True)
class Scene:
    gallery: Path  # the gallery root (one person folder inside)
    video: Path  # 9 s: the enrolled person, then a stranger -> 4 events per pass
    person: str
    frames: int


def photos_by_identity(root: Path) -> dict[str, list[Path]]:
    """A labelled shared set's photos (its labels.csv), grouped by identity, sorted by name."""
    from edgeface.evaluate import read_labels

    grouped: dict[str, list[Path]] = {}
    for image in read_labels(root / "labels.csv", root):
        grouped.setdefault(image.identity, []).append(image.path)
    return dict(sorted(grouped.items()))


@dataclass(frozen=True)
class Cast:
    gallery: Path  # the gallery root, with the enrolled person's folder
    person: str
    her: np.ndarray  # her head, mirrored: not one of the enrolled photos
    stranger: np.ndarray


def make_cast(root: Path, analyzer: Any) -> Cast:
    """A gallery of one person (pip-shipped photos) and the faces that walk past the cameras."""
    try:
        faces = packaged_faces()
    except EdgefaceError as exc:  # scikit-image missing
        pytest.skip(str(exc))
    gallery = root / "gallery" / faces.person
    gallery.mkdir(parents=True)
    for n, photo in enumerate(enrollment_photos(faces.person_photo)):
        cv2.imwrite(str(gallery / f"{n}.jpg"), photo)
    image = cv2.flip(faces.person_photo, 1)
    box = analyzer.detect(image)[0].box
    her = head_patch(image, (box.x, box.y, box.w, box.h), 1.9, 170)
    return Cast(root / "gallery", faces.person, her, faces.strangers[0])


def make_scene(root: Path, analyzer: Any) -> Scene:
    cast = make_cast(root, analyzer)
    her = cast.her
    video = root / "scene.avi"
    frames = compose_video(
        video,
        [
            Appearance(her, 0.5, 3.5, (40, 90), (300, 110)),
            Appearance(cast.stranger, 5.0, 7.5, (420, 120), (250, 100)),
        ],
        duration=9.0,
    )
    return Scene(cast.gallery, video, cast.person, frames)


def write_config(tmp: Path, source: str | Path, gallery: Path, port: int, **extra: Any) -> Path:
    doc: dict[str, Any] = {
        "device": {"id": DEVICE},
        # realtime: false: frames sampled in video time, as fast as they are processed
        "camera": {
            "source": str(source),
            "name": "door",
            "fps_cap": 15,
            "loop": True,
            "realtime": False,
        },
        "gallery": {"path": str(gallery), "settle_seconds": 0, "poll_interval": 0.5},
        "state_dir": str(tmp / "state"),
        "mqtt": {"port": port, "status_interval": 1},
    }
    for section, values in extra.items():
        if isinstance(values, dict):
            doc.setdefault(section, {}).update(values)
        else:
            doc[section] = values
    path = tmp / "edgeface.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def edgeface(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """The `edgeface` command with `args`, output captured (`env`: the whole environment).

    The deadline allows a model load on a busy machine; a FIFO opened by mistake would block
    forever without it."""
    return subprocess.run(
        [sys.executable, "-m", "edgeface", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def run_daemon(
    config: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`edgeface run` to its end (a video without loop), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "edgeface", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def decisions_over_video(
    tmp: Path, video: Path, gallery: Path, broker: Any, recorder_factory: Any, timeout: float
) -> list[dict[str, Any]]:
    """`edgeface run` once over a video (no loop, video time) with this gallery and the shipped
    defaults: the `recognized`/`unknown` events it published, in order."""
    recorder = recorder_factory(broker, f"edgeface/{DEVICE}/events")
    config = write_config(
        tmp, video, gallery, broker.port, camera={"loop": False, "realtime": False}
    )
    result = run_daemon(config, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(p) for p in recorder.payloads(f"edgeface/{DEVICE}/events")]
    return [e for e in events if e["type"] in ("recognized", "unknown")]


class DaemonProcess:
    """`edgeface run` as a child process; stderr (the log) goes to a file we can grep."""

    def __init__(
        self,
        config: Path,
        log: Path,
        env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.log_path = log
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeface", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
            env={**os.environ, **(env or {})},
            preexec_fn=preexec,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged_events(self) -> list[tuple[str, int]]:
        """(type, track id) of every event the daemon handed to the publisher, in order."""
        return [(m[1], int(m[2])) for m in _EVENT_LINE.finditer(self.log())]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if not self.alive():
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) waiting for {what}:\n"
                    f"{self.log()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}:\n{self.log()[-3000:]}"
                )
            time.sleep(0.05)

    def wait_events(self, count: int, timeout: float = 60) -> None:
        self.wait_for(lambda: len(self.logged_events()) >= count, timeout, f"{count} events")

    def terminate(self, timeout: float = 40) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.close()

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
        self._log_file.close()

    # -- resources, from /proc ---------------------------------------------------------------

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))


def received_events(recorder: Any) -> list[dict[str, Any]]:
    events = [json.loads(p) for p in recorder.payloads(EVENTS)]
    for event in events:
        validate_event(event)
    return events


def received_ids(recorder: Any) -> set[str]:
    """The distinct event ids received so far (a redelivery counts once)."""
    return {json.loads(p)["id"] for p in recorder.payloads(EVENTS)}


def assert_once_in_order(received: list[dict[str, Any]], logged: list[tuple[str, int]]) -> None:
    """Every logged event received exactly once by id, in the logged order, sane per track."""
    ids = [e["id"] for e in received]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"delivered twice: {duplicates}"
    _assert_in_logged_order(received, logged)


def assert_at_least_once_in_order(
    deliveries: list[Received], logged: list[tuple[str, int]], outages: int, max_inflight: int
) -> None:
    """The delivery promise across broker outages (README, "MQTT"): at least once, in order.

    `deliveries` are the recorder's messages on the events topic, in arrival order. Taking the
    first copy of each id, every logged event arrives once, in the logged order, sane per track
    (nothing lost, nothing invented, nothing reordered). A later copy of an id is a redelivery of
    a message in flight when a broker went away: the same bytes, on a later connection of the
    subscriber than any earlier copy (never twice on one connection), ahead of every new event
    on that connection (nothing newer overtakes it), and at most `max_inflight` per outage.
    """
    first: dict[str, Received] = {}
    last_connection: dict[str, int] = {}
    new_seen_on: set[int] = set()
    firsts: list[dict[str, Any]] = []
    repeats: list[str] = []
    for delivery in deliveries:
        event = json.loads(delivery.payload)
        validate_event(event)
        event_id, connection = event["id"], delivery.connection
        if event_id not in first:
            first[event_id] = delivery
            firsts.append(event)
            new_seen_on.add(connection)
        else:
            where = f"{event_id} again on connection {connection}"
            assert delivery.payload == first[event_id].payload, f"{where}: different bytes"
            assert connection > last_connection[event_id], (
                f"{where}, after a copy on connection {last_connection[event_id]}:"
                " a duplicate without a broker outage between"
            )
            assert connection not in new_seen_on, f"{where}: after a newer event"
            repeats.append(event_id)
        last_connection[event_id] = connection
    assert len(repeats) <= outages * max_inflight, f"{len(repeats)} redeliveries: {repeats}"
    _assert_in_logged_order(firsts, logged)


def _assert_in_logged_order(received: list[dict[str, Any]], logged: list[tuple[str, int]]) -> None:
    assert [(e["type"], e["track_id"]) for e in received] == logged, "lost or reordered events"
    per_track: dict[int, list[dict[str, Any]]] = {}
    for event in received:
        per_track.setdefault(event["track_id"], []).append(event)
    for track, events in per_track.items():
        types = [e["type"] for e in events]
        assert types[0] in ("recognized", "unknown") and types[-1] == "left", (track, types)
        assert "left" not in types[:-1], (track, types)
        stamps = [e["ts"] for e in events]
        assert stamps == sorted(stamps), f"track {track} out of order: {stamps}"


def latest_status(recorder: Any) -> dict[str, Any] | None:
    payloads = recorder.payloads(STATUS)
    return json.loads(payloads[-1]) if payloads else None


def wait_status(
    recorder: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str
) -> dict[str, Any]:
    recorder.wait_until(
        lambda: (s := latest_status(recorder)) is not None and predicate(s), timeout, what
    )
    status = latest_status(recorder)
    assert status is not None
    return status


def sqlite_check(path: Path, table: str) -> int:
    """integrity_check of a database the daemon wrote; returns the row count of `table`."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", path
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def outbox_ids(state: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(state / "outbox.sqlite3")) as db:
        rows = db.execute("SELECT payload FROM outbox WHERE topic LIKE '%/events' ORDER BY seq")
        return [json.loads(r[0])["id"] for r in rows]


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    if len(xs) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


class NotifySocket:
    """A fake systemd notify socket recording every datagram with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                continue

    def count(self, text: str, since: float, until: float | None = None) -> int:
        end = until if until is not None else float("inf")
        return sum(1 for t, m in list(self.messages) if since <= t <= end and text in m)

    def first(self, text: str) -> float:
        """Arrival time of the first message containing `text`."""
        return next(t for t, m in list(self.messages) if text in m)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class MjpegCamera:
    """An HTTP MJPEG camera (multipart/x-mixed-replace) that the test can stop and start again
    on the same port, like an IP camera rebooting. Frames come from a video file, looped."""

    def __init__(self, video: Path, fps: float = 15.0) -> None:
        capture = cv2.VideoCapture(str(video))
        self.jpegs: list[bytes] = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            self.jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
        capture.release()
        assert self.jpegs, f"{video}: no frames"
        self.fps = fps
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                index = 0
                try:
                    while camera._serving.is_set():
                        jpeg = camera.jpegs[index % len(camera.jpegs)]
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                            + jpeg
                            + b"\r\n"
                        )
                        index += 1
                        time.sleep(1 / camera.fps)
                except OSError:
                    return

        return Handler

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._serving.set()
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the listener and every open stream (the client sees the connection end)."""
        self._serving.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)


@dataclass
class Mount:
    """A mount the test made (tmpfs or read-only bind); unmounted by `undo`."""

    target: Path

    @classmethod
    def tmpfs(cls, target: Path, size: str) -> Mount:
        target.mkdir(parents=True, exist_ok=True)
        _run_mount(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(target)])
        return cls(target)

    @classmethod
    def read_only(cls, target: Path) -> Mount:
        _run_mount(["mount", "--bind", str(target), str(target)])
        try:
            _run_mount(["mount", "-o", "remount,bind,ro", str(target)])
        except BaseException:
            subprocess.run(["umount", str(target)], check=False)
            raise
        return cls(target)

    def undo(self) -> None:
        subprocess.run(["umount", "-l", str(self.target)], check=False, capture_output=True)


def _run_mount(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot {' '.join(argv[:3])} here (needs root/CAP_SYS_ADMIN): {result.stderr}")


def fill_disk(directory: Path) -> Path:
    """Write one file until ENOSPC (unbuffered); returns it: delete it to free the space."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 512, 1):  # big blocks, then whatever still fits
            block = b"\0" * size
            try:
                while True:
                    os.write(fd, block)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def iter_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
