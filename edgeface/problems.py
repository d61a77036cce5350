"""The daemon's problems as a user reads them: logged once per change, summed up in `last_error`.

Owns: the last problem any part reported (a camera that is gone, a frame that failed, a cache or
state directory that cannot be written) and the one-line `last_error` of the status, where the
problems that are current right now come first. Never: decides what is a problem (the parts
report them) or raises.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

MAX_LINE = 500


class Problems:
    """Thread-safe: every camera thread, the gallery watcher and the publisher report here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: str | None = None

    def report(self, message: str) -> None:
        """Log `message` unless it repeats the last one; it becomes the last problem."""
        with self._lock:
            repeat, self.last = message == self.last, message
        if not repeat:
            log.error("%s", message)

    def line(self, *current: str | None) -> str | None:
        """`current` problems first, then the last reported one; each once, at most 500 chars."""
        parts: list[str] = []
        for part in (*current, self.last):
            if part and part not in parts and not any(part in p for p in parts):
                parts.append(part)
        return "; ".join(parts)[:MAX_LINE] or None
