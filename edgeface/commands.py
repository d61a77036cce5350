"""Commands a peer sends to the daemon (`cmd/<name>`): checked, queued, executed, answered.

Owns: the rules a request must pass before anything runs (a known `[a-z_]{1,32}` name, at most
`MAX_COMMAND_BYTES`, UTF-8, a JSON object nested at most `MAX_COMMAND_DEPTH` deep, no key but
`request_id`), the bounded queue between the transport and the one worker thread that runs
commands (beyond `COMMAND_QUEUE_SIZE` a request is refused as busy instead of queued without
bound by whoever can publish to our topic), running the action and the reply object
(`{"ok", "command", "request_id"?, "result"?, "error"?}`: `ok` false with an `error` for a refused
command, whether the rules or the action refused it; `request_id` echoed as sent, any JSON value).

No command takes an argument, in particular no file name or path: unexpected keys are refused,
not ignored, so a caller never believes a path it sent was used.
Never: touches the network (the transport hands in the topic's last level and the payload bytes
and sends the reply bytes it is given), or runs an action on the transport's thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any

log = logging.getLogger(__name__)

# An action answers one command: a JSON-able object, `{"ok": False, "error": ...}` when refused.
Action = Callable[[], dict[str, Any]]

COMMAND_NAME = re.compile(r"[a-z_]{1,32}")
MAX_COMMAND_BYTES = 64 * 1024
MAX_COMMAND_DEPTH = 8
COMMAND_QUEUE_SIZE = 32
# Keys a command payload may carry.
COMMAND_KEYS = frozenset({"request_id"})
# The reply topic's last level: a command by that name would answer itself.
RESULT = "result"
_MAX_ERROR_CHARS = 200


class CommandError(Exception):
    """A command was refused; the message goes into the error reply as-is."""


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True if arrays/objects nest deeper than `limit`; checked before json.loads so a hostile
    payload cannot make the parser recurse thousands of levels."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_request(name: str, payload: bytes, known: Collection[str]) -> dict[str, Any]:
    """The request object of `cmd/<name>`; CommandError says why it is refused."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError(f"payload too large ({len(payload)} bytes, max {MAX_COMMAND_BYTES})")
    if not COMMAND_NAME.fullmatch(name) or name == RESULT:
        raise CommandError("invalid command name (expected [a-z_]{1,32})")
    if name not in known:
        raise CommandError("unknown command")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError("payload is not UTF-8") from exc
    if not text.strip():
        return {}
    if json_depth_exceeds(text, MAX_COMMAND_DEPTH):
        raise CommandError(f"JSON nested deeper than {MAX_COMMAND_DEPTH} levels")
    try:
        request = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise CommandError(f"malformed JSON ({exc})"[:_MAX_ERROR_CHARS]) from exc
    if not isinstance(request, dict):
        raise CommandError(f"payload must be a JSON object, got {type(request).__name__}")
    return request


def execute(actions: Mapping[str, Action], name: str, payload: bytes) -> dict[str, Any]:
    """The reply to `cmd/<name>` with `payload`; the action runs only for a valid request."""
    shown = name if COMMAND_NAME.fullmatch(name) else name[:40]
    reply: dict[str, Any] = {"ok": False, "command": shown}
    try:
        request = parse_request(name, payload, actions)
        if "request_id" in request:  # as sent, whatever it is: the caller matches on it
            reply["request_id"] = request["request_id"]
        extra = sorted(str(k)[:40] for k in request if k not in COMMAND_KEYS)
        if extra:
            result: Any = {
                "ok": False,
                "error": f"{name} takes no arguments (got: {', '.join(extra)})",
            }
        else:
            result = _run(actions[name])
    except CommandError as exc:
        reply["error"] = str(exc)
        log.warning("MQTT command %r refused: %s", shown, reply["error"])
        return reply
    # The action's own verdict is the reply's: a refused command is not `ok` at the top.
    reply.update(ok=result.get("ok", True) is not False, result=result)
    if not reply["ok"] and "error" in result:
        reply["error"] = str(result["error"])[:_MAX_ERROR_CHARS]
    return reply


def _run(action: Action) -> dict[str, Any]:
    try:
        result = action()
    except Exception as exc:  # the action is the daemon's code: report, keep running
        raise CommandError(f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]) from exc
    if not isinstance(result, dict):
        raise CommandError(f"handler returned {type(result).__name__}, not an object")
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"handler result is not JSON ({exc})"[:_MAX_ERROR_CHARS]) from exc
    return result


class CommandWorker:
    """Runs commands one at a time on its own thread, in arrival order; `submit` never blocks.

    `send` gets each reply as bytes (the transport publishes them on `cmd/result`).
    """

    def __init__(self, actions: Mapping[str, Action], send: Callable[[bytes], None]) -> None:
        self.actions, self.send = dict(actions), send
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(COMMAND_QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, name: str, payload: bytes) -> None:
        """Queue a request (from the transport's thread); refused at once when too many wait."""
        try:
            self._queue.put_nowait((name, payload))
        except queue.Full:
            log.warning("MQTT command %r refused: too many commands waiting", name[:40])
            self._send(
                {"ok": False, "command": name[:40], "error": "busy: too many commands waiting"}
            )

    def stop(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            self._send(execute(self.actions, *item))

    def _send(self, reply: dict[str, Any]) -> None:
        self.send(json.dumps(reply).encode("utf-8"))
