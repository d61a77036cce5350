"""What the daemon answers to MQTT commands (`cmd/<name>`): the names, the keys a payload may
carry, and the reply each command gets.

Owns: `COMMANDS`, the refusal of any key other than `request_id` (no command takes an argument,
in particular no file name or path, so nothing a peer sends can steer a read or write outside
our directories), and the reply dicts (`ok`, then `error` or the command's result).
Never: validates the payload's size, JSON or name (the publisher has done that before this is
called), sends the reply (the publisher does, echoing `request_id`), or touches the pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2

from edgeface.types import Frame

COMMANDS = ("reload", "snapshot", "status")
# Keys a command payload may carry; anything else (e.g. a "path") is refused, not ignored, so a
# caller never believes a path it sent was used.
COMMAND_KEYS = frozenset({"request_id"})


@dataclass(frozen=True)
class CommandTarget:
    """What the commands act on, as callables into the running daemon."""

    request_reload: Callable[[], None]
    status: Callable[[], dict[str, Any]]
    latest_frame: Callable[[], Frame | None]
    snapshots_enabled: Callable[[], bool]
    publish_snapshot: Callable[[str, bytes], bool]


def answer(target: CommandTarget, name: str, payload: bytes) -> dict[str, Any]:
    """The reply to one command whose name and JSON payload the publisher has checked."""
    request = json.loads(payload) if payload.strip() else {}
    extra = sorted(str(k)[:40] for k in request if k not in COMMAND_KEYS)
    if extra:
        return {"ok": False, "error": f"{name} takes no arguments (got: {', '.join(extra)})"}
    if name == "reload":
        target.request_reload()
        return {"ok": True, "message": "reload scheduled"}
    if name == "status":
        return {"ok": True, "status": target.status()}
    if name == "snapshot":
        return _snapshot(target)
    return {"ok": False, "error": f"unknown command {name!r} (known: {', '.join(COMMANDS)})"}


def _snapshot(target: CommandTarget) -> dict[str, Any]:
    if not target.snapshots_enabled():
        return {"ok": False, "error": "snapshots are disabled (mqtt.snapshots: false)"}
    frame = target.latest_frame()
    if frame is None:
        return {"ok": False, "error": "no frame yet"}
    ok, jpeg = cv2.imencode(".jpg", frame.image)
    if not ok:
        return {"ok": False, "error": "encoding failed"}
    snapshot_id = f"frame-{frame.sequence}"
    target.publish_snapshot(snapshot_id, jpeg.tobytes())
    return {"ok": True, "snapshot": snapshot_id}
