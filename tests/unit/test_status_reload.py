"""The status assembled from each part's own `status()`, and the reloader's refusal and recovery."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from edgeface.config import load_config
from edgeface.problems import Problems
from edgeface.reload import ReloadPlan
from edgeface.reloader import Reloader
from edgeface.stats import RollingStats
from edgeface.status import StatusReport
from edgeface.systemd import Notifier


def test_the_status_is_the_parts_status_and_current_problems_come_first() -> None:
    publisher = SimpleNamespace(last_error="connection refused", outbox_depth=3)
    events = SimpleNamespace(
        publisher=publisher,
        outbox_problem="outbox unusable",
        status=lambda: {"outbox_depth": 3, "mqtt_connected": False},
    )
    cameras = SimpleNamespace(status=lambda: {"camera": {"name": "a"}, "cameras": [{"name": "a"}]})
    gallery = SimpleNamespace(status=lambda: {"people": 2}, people=("x", "y"))
    problems = Problems()
    problems.report("frame 3: ValueError: x")
    reloader = SimpleNamespace(problem="reload refused, keeping the running config: bad")
    report = StatusReport(
        "dev", "m", RollingStats(), cameras, gallery, events, problems, reloader, clock=lambda: 5.0
    )  # type: ignore[arg-type]
    status = report.report()
    assert status["device"] == "dev" and status["uptime"] == 0.0
    assert status["cameras"] == [{"name": "a"}] and status["gallery"] == {"people": 2}
    assert status["frames"] == 0 and status["outbox_depth"] == 3
    assert status["last_error"] == (
        "outbox unusable; connection refused; reload refused, keeping the running config: bad;"
        " frame 3: ValueError: x"
    )
    assert report.line() == "0.0 fps, 2 people, outbox 3"
    assert report.command()["status"]["device"] == "dev"


def test_a_refused_reload_applies_nothing_until_the_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tracking": {"votes_to_decide": 3}}))
    applied: list[ReloadPlan | None] = []
    reloader = Reloader(load_config(path), path, applied.append, Notifier({}))
    path.write_text("tracking: {votes_to_decide: [")
    reloader.reload()
    assert applied == [None] and reloader.problem is not None
    assert reloader.problem.startswith("reload refused, keeping the running config: ")
    path.write_text(yaml.safe_dump({"tracking": {"votes_to_decide": 5}}))
    reloader.reload()
    plan: Any = applied[-1]
    assert plan.live == ["tracking.votes_to_decide"] and reloader.problem is None
    assert reloader.cfg.tracking.votes_to_decide == 5
    assert reloader.command() == {"ok": True, "message": "reload scheduled"}
