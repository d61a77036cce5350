"""Notifier against a real AF_UNIX datagram socket; ProgressWatchdog with a fake clock."""

from __future__ import annotations

import logging
import os
import socket
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeface.systemd import Notifier, ProgressWatchdog


class FakeSystemd:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2.0)

    def receive(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(2.0)
        return False


@pytest.fixture
def fs_systemd(tmp_path: Path) -> Iterator[tuple[FakeSystemd, str]]:
    path = str(tmp_path / "notify.sock")
    fake = FakeSystemd(path)
    yield fake, path
    fake.sock.close()


@pytest.fixture
def abstract_systemd() -> Iterator[tuple[FakeSystemd, str]]:
    name = f"edgeface-test-{uuid.uuid4().hex}"
    fake = FakeSystemd(b"\0" + name.encode())
    yield fake, "@" + name
    fake.sock.close()


def notifier(address: str, **extra: str) -> Notifier:
    # use_library=False: the datagram path is what this test owns, installed extras or not.
    return Notifier({"NOTIFY_SOCKET": address, **extra}, use_library=False)


def test_messages_are_sd_notify_assignments(fs_systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = fs_systemd
    n = notifier(path)
    n.ready("watching camera")
    assert fake.receive() == {"READY": "1", "STATUS": "watching camera"}
    n.status("3 people in gallery")
    assert fake.receive() == {"STATUS": "3 people in gallery"}
    n.watchdog()
    assert fake.receive() == {"WATCHDOG": "1"}
    n.stopping()
    assert fake.receive() == {"STOPPING": "1"}
    n.extend_timeout(2.5)
    assert fake.receive() == {"EXTEND_TIMEOUT_USEC": "2500000"}
    n.close()


def test_abstract_namespace_socket(abstract_systemd: tuple[FakeSystemd, str]) -> None:
    fake, address = abstract_systemd
    n = notifier(address)
    assert n.ready()
    assert fake.receive() == {"READY": "1"}
    assert n.watchdog()
    assert fake.receive() == {"WATCHDOG": "1"}


def test_reload_sends_reloading_then_ready(fs_systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = fs_systemd
    n = notifier(path)
    with pytest.raises(RuntimeError), n.reload("reloaded"):
        raise RuntimeError("bad gallery")
    first = fake.receive()
    assert first["RELOADING"] == "1"
    assert int(first["MONOTONIC_USEC"]) > 0
    # READY=1 even after a failed reload, or the unit would stay "reloading".
    assert fake.receive() == {"READY": "1", "STATUS": "reloaded"}


def test_status_newlines_cannot_inject_fields(fs_systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = fs_systemd
    notifier(path).status("camera lost\nREADY=1")
    assert fake.receive() == {"STATUS": "camera lost READY=1"}


def test_not_under_systemd_is_a_silent_no_op(caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.ready("x")
    assert not n.watchdog()
    assert n.watchdog_interval() is None
    assert caplog.records == []


def test_failures_never_raise_and_log_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    n = notifier(str(tmp_path / "nobody-listens.sock"))
    with caplog.at_level(logging.DEBUG, logger="edgeface.systemd"):
        assert not n.ready()
        assert not n.watchdog()
        assert not n.watchdog()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "cannot notify systemd" in warnings[0].getMessage()


def test_recovers_when_the_socket_appears_later(tmp_path: Path) -> None:
    path = str(tmp_path / "late.sock")
    n = notifier(path)
    assert not n.watchdog()
    fake = FakeSystemd(path)
    try:
        assert n.watchdog()
        assert fake.receive() == {"WATCHDOG": "1"}
    finally:
        fake.sock.close()


def test_unsupported_address_is_disabled_without_raising() -> None:
    n = notifier("vsock:2:1234")
    assert not n.enabled
    assert not n.ready()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "30000000"}
    assert Notifier(env, use_library=False).watchdog_interval() == 15.0
    mine = {**env, "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine, use_library=False).watchdog_interval() == 15.0
    inherited = {**env, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(inherited, use_library=False).watchdog_interval() is None
    for bad in ("", "0", "-5", "soon"):
        broken = {**env, "WATCHDOG_USEC": bad}
        assert Notifier(broken, use_library=False).watchdog_interval() is None


# --- ProgressWatchdog -------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class CountingNotifier(Notifier):
    def __init__(self) -> None:
        super().__init__({})
        self.feeds = 0
        self.statuses: list[str] = []

    def watchdog(self) -> bool:
        self.feeds += 1
        return True

    def status(self, text: str) -> bool:
        self.statuses.append(text)
        return True


def make_watchdog(timeout: float = 20.0) -> tuple[ProgressWatchdog, CountingNotifier, FakeClock]:
    clock = FakeClock()
    n = CountingNotifier()
    return ProgressWatchdog(n, stall_timeout=timeout, clock=clock), n, clock


def test_frames_completing_feed_the_watchdog() -> None:
    wd, n, clock = make_watchdog()
    for _ in range(10):
        clock.t += 5
        with wd.working():
            clock.t += 0.2
        assert wd.tick()
    assert n.feeds == 10


def test_startup_grace_then_stall_without_progress() -> None:
    wd, n, clock = make_watchdog()
    clock.t += 19
    assert wd.tick()
    clock.t += 2
    assert not wd.tick()
    assert n.feeds == 1


def test_hung_model_call_stops_feeding(caplog: pytest.LogCaptureFixture) -> None:
    wd, n, clock = make_watchdog()
    wd.progress()
    wd.started()  # invoke() never returns
    for _ in range(3):
        clock.t += 10
        wd.tick()
    assert n.feeds == 2  # the ticks at +10 s and +20 s, within stall_timeout
    assert n.statuses and n.statuses[0].startswith("stalled: a frame has been processing")
    # Logged once per stall, not every tick.
    assert sum("stalled" in r.getMessage() for r in caplog.records) == 1


def test_camera_outage_keeps_feeding() -> None:
    wd, n, clock = make_watchdog()
    wd.progress()
    # Camera unplugged for an hour: capture keeps reporting it is alive but idle.
    for _ in range(360):
        clock.t += 10
        wd.alive(reason="waiting for camera /dev/video0")
        assert wd.tick()
    assert n.feeds == 360


def test_hung_model_while_camera_flaps_still_stops_feeding() -> None:
    wd, n, clock = make_watchdog()
    wd.started()
    for _ in range(5):
        clock.t += 10
        wd.alive()  # capture reconnecting meanwhile
        wd.tick()
    assert n.feeds == 2
    assert wd.problem() is not None


def test_dead_loop_without_alive_or_progress_stops_feeding() -> None:
    wd, _n, clock = make_watchdog()
    wd.alive()
    clock.t += 25
    assert not wd.tick()
    assert wd.problem() == "no frame completed for 25s"


def test_failed_frame_is_not_progress_but_not_a_hang() -> None:
    wd, _n, clock = make_watchdog()
    clock.t += 15
    with pytest.raises(ValueError), wd.working():
        raise ValueError("corrupt frame")
    clock.t += 10
    # Not busy any more, but nothing completed for 25 s either.
    assert wd.problem() == "no frame completed for 25s"
    wd.alive()
    assert wd.problem() is None


def test_recovery_after_a_stall_feeds_again() -> None:
    wd, n, clock = make_watchdog()
    clock.t += 30
    assert not wd.tick()
    wd.progress()
    assert wd.tick()
    assert n.feeds == 1


def test_explicit_now_overrides_the_clock() -> None:
    wd, _n, _clock = make_watchdog()
    wd.progress(now=5000.0)
    assert wd.problem(now=5010.0) is None
    assert wd.problem(now=5030.0) is not None


def test_without_notifier_tick_only_reports() -> None:
    wd = ProgressWatchdog(None, stall_timeout=1.0, clock=lambda: 0.0)
    assert wd.tick()


def test_stall_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ProgressWatchdog(None, stall_timeout=0)


def test_watchdog_feeds_a_real_socket(fs_systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = fs_systemd
    clock = FakeClock()
    wd = ProgressWatchdog(notifier(path), stall_timeout=20, clock=clock)
    wd.progress()
    assert wd.tick()
    assert fake.receive() == {"WATCHDOG": "1"}
    clock.t += 60
    assert not wd.tick()
    assert fake.receive() == {"STATUS": "stalled: no frame completed for 60s"}
    assert fake.nothing_pending()


def test_uses_systemd_python_when_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    def notify(message: str) -> bool:
        sent.append(message)
        return True

    package = types.ModuleType("systemd")
    daemon = types.ModuleType("systemd.daemon")
    daemon.notify = notify  # type: ignore[attr-defined]
    package.daemon = daemon  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.daemon", daemon)
    monkeypatch.setenv("NOTIFY_SOCKET", "@edgeface-library-test")
    n = Notifier()
    assert n.ready("up")
    assert n.watchdog()
    assert sent == ["READY=1\nSTATUS=up", "WATCHDOG=1"]


def test_library_errors_never_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(message: str) -> bool:
        raise OSError("journal gone")

    daemon = types.ModuleType("systemd.daemon")
    daemon.notify = broken  # type: ignore[attr-defined]
    package = types.ModuleType("systemd")
    package.daemon = daemon  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "systemd", package)
    monkeypatch.setitem(sys.modules, "systemd.daemon", daemon)
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    assert not Notifier().watchdog()
