"""The daemon's side of the systemd service protocol: sd_notify messages and watchdog feeding.

Owns: talking to `$NOTIFY_SOCKET` (READY / STATUS / WATCHDOG / STOPPING / RELOADING), reading
`$WATCHDOG_USEC` / `$WATCHDOG_PID`, and the rule deciding when the watchdog may be fed
(`ProgressWatchdog`). Uses `systemd.daemon.notify` from systemd-python when it is importable,
otherwise writes the datagrams itself.

Never: raises into the daemon (systemd being absent or broken must not stop face recognition),
starts threads or timers (the daemon calls `tick`), or reads the wall clock on its own when a
`now` is given (tests drive time).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)


def _load_library_notify() -> Callable[[str], Any] | None:
    try:
        from systemd import daemon  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    notify = getattr(daemon, "notify", None)
    return notify if callable(notify) else None


def _socket_address(value: str) -> str | bytes | None:
    """`$NOTIFY_SOCKET` -> an address for sendto; None when this module cannot reach it."""
    if value.startswith("@"):
        # Linux abstract namespace: the leading '@' stands for a NUL byte.
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # e.g. "vsock:2:1234" (systemd >= 253): not needed on a Pi, and not worth a dependency.
    return None


class Notifier:
    """Sends sd_notify messages; a silent no-op when the process was not started by systemd.

    `environ` defaults to `os.environ` and is read once, at construction. Every method returns
    whether the message was handed to systemd, and never raises: the first failure is logged
    as a warning, later ones only at debug level (a broken socket would otherwise log every
    watchdog tick for months).
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        use_library: bool = True,
    ) -> None:
        env = os.environ if environ is None else environ
        self._socket_value = env.get("NOTIFY_SOCKET", "")
        self._watchdog_usec = env.get("WATCHDOG_USEC")
        self._watchdog_pid = env.get("WATCHDOG_PID")
        self._address = _socket_address(self._socket_value) if self._socket_value else None
        # The library reads os.environ itself, so it is only right when we were given that.
        same_env = os.environ.get("NOTIFY_SOCKET", "") == self._socket_value
        self._library = _load_library_notify() if use_library and same_env else None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failure_logged = False
        if self._socket_value and self._address is None and self._library is None:
            self._fail(f"NOTIFY_SOCKET={self._socket_value!r} is not a unix socket address")

    @property
    def enabled(self) -> bool:
        """True when started by systemd with a notify socket this process can use."""
        return bool(self._socket_value) and (self._library is not None or self._address is not None)

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) finished: systemd marks the unit active."""
        return self._send("READY=1", status)

    def status(self, text: str) -> bool:
        """Free-form one-line state shown by `systemctl status`."""
        return self._send(None, text)

    def watchdog(self) -> bool:
        """Feed the watchdog unconditionally; normally `ProgressWatchdog.tick` decides this."""
        return self._send("WATCHDOG=1", None)

    def stopping(self, status: str | None = None) -> bool:
        return self._send("STOPPING=1", status)

    def reloading(self, status: str | None = None) -> bool:
        """A reload (SIGHUP) started; call `ready()` when it is done, or use `reload()`."""
        # MONOTONIC_USEC is required by Type=notify-reload (systemd >= 253), ignored before.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}", status)

    @contextlib.contextmanager
    def reload(self, status: str | None = None) -> Iterator[None]:
        """`with notifier.reload(): ...` sends RELOADING=1 before and READY=1 after the block.

        READY=1 is sent even if the block raised: the daemon keeps running on its old state,
        and a unit stuck in "reloading" would block the next `systemctl reload`.
        """
        self.reloading()
        try:
            yield
        finally:
            self.ready(status)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start/stop time (slow model loading on a Pi 3)."""
        return self._send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}", None)

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog feeds (half of WatchdogSec), or None when not requested.

        None as well when WATCHDOG_PID names another process: the variable was inherited.
        """
        if not self._watchdog_usec:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 2 / 1_000_000

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _send(self, state: str | None, status: str | None) -> bool:
        if not self._socket_value:
            return False
        lines = [state] if state else []
        if status is not None:
            # A newline would start a new assignment; systemd would read it as another field.
            lines.append("STATUS=" + " ".join(status.splitlines()))
        if not lines:
            return False
        message = "\n".join(lines)
        try:
            with self._lock:
                if self._library is not None:
                    return bool(self._library(message))
                return self._send_datagram(message.encode())
        except Exception as exc:  # never let systemd trouble reach the pipeline
            self._fail(f"{type(exc).__name__}: {exc}")
            return False

    def _send_datagram(self, payload: bytes) -> bool:
        if self._address is None:
            return False
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.sendto(payload, self._address)
        except OSError:
            # A fresh socket next time: cheap, and recovers from whatever went wrong.
            self._sock.close()
            self._sock = None
            raise
        return True

    def _fail(self, reason: str) -> None:
        if self._failure_logged:
            log.debug("sd_notify failed again: %s", reason)
            return
        self._failure_logged = True
        log.warning("cannot notify systemd (%s); continuing without it", reason)


class ProgressWatchdog:
    """Feeds the systemd watchdog only while the pipeline is really working.

    Two kinds of evidence keep the watchdog fed:
      * `progress()` - the pipeline completed a frame (detect -> ... -> events returned);
      * `alive()` - the capture side is healthy but has nothing to hand over (camera unplugged,
        RTSP reconnect back-off, end of a file). A missing camera is not a hang: restarting
        would not bring it back, and would only turn an outage into a restart loop.

    One kind of evidence stops it regardless of `alive()`: a frame that was `started()` and has
    not finished within `stall_timeout` - the signature of a hung model call. So a hung
    `invoke()` gets the service restarted even if the camera flaps meanwhile, while an idle
    pipeline waiting for a camera does not. Without `started()` calls the rule degrades to
    "no progress and no alive() for `stall_timeout`", which still catches a dead loop.

    Keep `stall_timeout` below WatchdogSec so systemd notices within one WatchdogSec after it.
    Thread-safe: capture, pipeline and the main loop may call it from different threads.
    """

    def __init__(
        self,
        notifier: Notifier | None,
        stall_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if stall_timeout <= 0:
            raise ValueError("stall_timeout must be positive")
        self._notifier = notifier
        self._stall_timeout = stall_timeout
        self._clock = clock
        self._lock = threading.Lock()
        start = clock()
        # Construction counts as progress: a grace period for the first frame.
        self._last_progress = start
        self._last_alive: float | None = None
        self._alive_reason = ""
        self._busy_since: float | None = None
        self._feeder = WatchdogFeeder(notifier)

    @property
    def stall_timeout(self) -> float:
        return self._stall_timeout

    def started(self, now: float | None = None) -> None:
        """The pipeline began working on a frame (call right before detect/embed)."""
        with self._lock:
            self._busy_since = self._now(now)

    def progress(self, now: float | None = None) -> None:
        """The pipeline really completed a frame."""
        with self._lock:
            self._last_progress = self._now(now)
            self._busy_since = None

    def abandoned(self, now: float | None = None) -> None:
        """The frame started last ended in an exception: not busy any more, but no progress."""
        with self._lock:
            self._busy_since = None

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """`with wd.working(): process(frame)` = started(); progress() or abandoned()."""
        self.started()
        try:
            yield
        except BaseException:
            self.abandoned()
            raise
        self.progress()

    def alive(self, now: float | None = None, reason: str = "waiting for camera") -> None:
        """Healthy but idle: no input to process (e.g. the camera is gone)."""
        with self._lock:
            self._last_alive = self._now(now)
            self._alive_reason = reason

    def problem(self, now: float | None = None) -> str | None:
        """Why the watchdog must not be fed now, or None when it may be."""
        with self._lock:
            t = self._now(now)
            limit = self._stall_timeout
            if self._busy_since is not None and t - self._busy_since > limit:
                return f"a frame has been processing for {t - self._busy_since:.0f}s"
            if t - self._last_progress <= limit:
                return None
            if self._last_alive is not None and t - self._last_alive <= limit:
                return None
            return f"no frame completed for {t - self._last_progress:.0f}s"

    def hung(self, now: float | None = None) -> bool:
        """A frame has been processing for longer than `stall_timeout`."""
        with self._lock:
            busy = self._busy_since
            return busy is not None and self._now(now) - busy > self._stall_timeout

    def tick(self, now: float | None = None) -> bool:
        """Send WATCHDOG=1 if the pipeline is healthy; returns whether it was (fed or not)."""
        return self._feeder.tick(self.problem(now))

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now


class WatchdogFeeder:
    """Sends WATCHDOG=1 while nothing is stalled; says once per stall why it stopped feeding.

    The daemon ticks it with the first problem of its cameras' `ProgressWatchdog`s, so the log
    and `systemctl status` name the camera that stalled.
    """

    def __init__(self, notifier: Notifier | None) -> None:
        self._notifier = notifier
        self._stalled = False

    def tick(self, problem: str | None) -> bool:
        """Feed the watchdog if `problem` is None; returns whether it was (fed or not)."""
        if problem is None:
            if self._stalled:
                self._stalled = False
                log.info("pipeline progressing again; feeding the watchdog")
            if self._notifier is not None:
                self._notifier.watchdog()
            return True
        if not self._stalled:
            # Once per stall: the last words before systemd's SIGABRT, visible in the journal
            # and in `systemctl status`.
            self._stalled = True
            log.error("pipeline stalled (%s); no longer feeding the systemd watchdog", problem)
            if self._notifier is not None:
                self._notifier.status(f"stalled: {problem}")
        return False
