"""Commands without a transport: the worker runs actions off the caller's thread, in order, and
refuses what cannot wait; requests with arguments never reach an action."""

from __future__ import annotations

import json
import threading
from typing import Any

from edgeface.commands import COMMAND_QUEUE_SIZE, CommandWorker, execute


def test_arguments_are_refused_before_the_action_runs() -> None:
    ran: list[str] = []
    reply = execute({"reload": lambda: ran.append("x") or {}}, "reload", b'{"path": "/etc"}')
    assert reply["ok"] is False and ran == []
    assert reply["error"] == "reload takes no arguments (got: path)"


def test_an_action_that_raises_is_an_error_reply() -> None:
    def boom() -> dict[str, Any]:
        raise RuntimeError("no")

    assert execute({"x": boom}, "x", b"")["error"] == "RuntimeError: no"


def test_worker_runs_actions_in_order_on_its_own_thread() -> None:
    replies: list[dict[str, Any]] = []
    done = threading.Event()
    threads: list[str] = []

    def action() -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        return {"n": len(threads)}

    def send(reply: bytes) -> None:
        replies.append(json.loads(reply))
        if len(replies) == 3:
            done.set()

    worker = CommandWorker({"status": action}, send)
    worker.start()
    for i in range(3):
        worker.submit("status", json.dumps({"request_id": str(i)}).encode())
    assert done.wait(10)
    worker.stop()
    assert [r["request_id"] for r in replies] == ["0", "1", "2"]
    assert [r["result"]["n"] for r in replies] == [1, 2, 3]
    assert set(threads) == {"commands"}


def test_a_full_queue_answers_busy_at_once() -> None:
    release = threading.Event()
    replies: list[dict[str, Any]] = []
    started = threading.Event()

    def slow() -> dict[str, Any]:
        started.set()
        release.wait(10)
        return {}

    worker = CommandWorker({"slow": slow}, lambda b: replies.append(json.loads(b)))
    worker.start()
    worker.submit("slow", b"")
    assert started.wait(10)
    for _ in range(COMMAND_QUEUE_SIZE + 1):
        worker.submit("slow", b"")
    busy = [r for r in replies if "busy" in r.get("error", "")]
    assert len(busy) == 1 and busy[0]["command"] == "slow"
    release.set()
    worker.stop()
