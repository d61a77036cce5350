"""Applying a reload (SIGHUP, `cmd/reload`) to the running daemon, on its own thread.

Owns: the reload thread (a request takes effect whether or not frames are flowing), rereading
the config file, refusing a file that does not load (the running config stays, the reason in
`last_error` until a reload succeeds), telling systemd (RELOADING ... READY), and handing the plan (`reload.plan_reload`:
what is live, what waits for a restart) to `apply`. Never: decides what is live (`reload` does)
or touches a camera, the gallery or the tracker itself (`apply` does).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeface.config import Config, load_config
from edgeface.errors import EdgefaceError
from edgeface.reload import ReloadPlan, plan_reload
from edgeface.systemd import Notifier

log = logging.getLogger(__name__)


class Reloader:
    """`request()` from a signal handler or a command; `run()` is the reload thread."""

    def __init__(
        self,
        cfg: Config,
        config_path: Path | None,
        apply: Callable[[ReloadPlan | None], None],
        notifier: Notifier,
    ) -> None:
        self.cfg, self.config_path, self.apply = cfg, config_path, apply
        self.notifier = notifier
        # Why the last reload was refused; shown in `last_error` until a reload succeeds.
        self.problem: str | None = None
        self._requested = threading.Event()

    def request(self) -> None:
        self._requested.set()

    def command(self) -> dict[str, Any]:
        """`cmd/reload`: scheduled on the reload thread, answered at once."""
        self.request()
        return {"ok": True, "message": "reload scheduled"}

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self._requested.wait(0.25) and not stop.is_set():
                self.reload()

    def reload(self) -> None:
        """Apply the file as it is now; `apply(None)` (a file that does not load, or an
        in-process daemon without one) only refreshes the gallery."""
        self._requested.clear()
        with self.notifier.reload("reloading configuration and gallery"):
            plan = self._plan() if self.config_path is not None else None
            if plan is not None:
                self.cfg = plan.config
            self.apply(plan)
            if plan is not None:
                log.info("reload: applied %s", plan.applied() or "no changed setting")

    def _plan(self) -> ReloadPlan | None:
        assert self.config_path is not None
        try:
            loaded = load_config(self.config_path)
        except EdgefaceError as exc:
            self.problem = f"reload refused, keeping the running config: {exc}"
            log.error("%s", self.problem)
            return None
        self.problem = None
        plan = plan_reload(self.cfg, loaded)
        if plan.restart:
            log.warning("reload: %s", plan.postponed())
        return plan
