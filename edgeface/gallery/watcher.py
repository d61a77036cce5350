"""Following the gallery folder live and handing out fresh GalleryUpdates.

Owns: one worker thread that refreshes the Gallery when the folder changes (inotify through
`watchdog`, debounced) or, without inotify (config `watch: false`, a network share, inotify limits
reached), by polling every `poll_interval`; waking up when a pending file should have settled;
noticing a symlink flip of the gallery root; and calling back with each changed update.
A large batch of photos is indexed in slices of about `INDEXING_SLICE` seconds, each followed by
an update (so what is indexed is usable at once) and a look at the folder (so a photo added
meanwhile goes before the rest of the batch); a stop is answered between two photos.
Never: dies on an exception (it logs and carries on), analyses photos itself, or calls back
from more than one thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from edgeface.gallery.folder import is_temporary_name
from edgeface.gallery.store import Gallery, GalleryUpdate

log = logging.getLogger(__name__)

UpdateCallback = Callable[[GalleryUpdate], None]

# Our own reads of photos produce these; reacting to them would refresh forever.
_IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})
# Seconds of photo analysis per refresh while a backlog remains (at least one photo each).
INDEXING_SLICE = 1.0


class _Nudge(FileSystemEventHandler):
    """Turns relevant filesystem events into a wake-up of the worker thread."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_EVENTS:
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        names = [os.path.basename(os.fsdecode(p)) for p in paths if p]
        # A sync tool writing its temp file is not news yet; its final rename is.
        if event.is_directory or not all(is_temporary_name(n) for n in names):
            self._wake()


class GalleryWatcher:
    """Keeps a Gallery current in a background thread and reports each change."""

    def __init__(
        self,
        gallery: Gallery,
        on_update: UpdateCallback,
        *,
        watch: bool = True,
        poll_interval: float = 1.0,
        debounce: float = 0.15,
        rescan_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gallery = gallery
        self.on_update = on_update
        self.poll_interval = poll_interval
        self.debounce = debounce
        # With inotify, a slow full rescan still runs: events can be lost (queue overflow).
        self.rescan_interval = rescan_interval
        self.clock = clock
        self._use_watchdog = watch
        self._observer: Any = None
        self._watched: Path | None = None
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._delivered = False
        self.last_update: GalleryUpdate | None = None

    @classmethod
    def from_gallery_config(
        cls, gallery: Gallery, on_update: UpdateCallback, **kwargs: Any
    ) -> GalleryWatcher:
        s = gallery.settings
        return cls(gallery, on_update, watch=s.watch, poll_interval=s.poll_interval, **kwargs)

    @property
    def mode(self) -> str:
        return "inotify" if self._observer is not None else "polling"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("watcher already started")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="gallery-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._stop_observer()

    def request_refresh(self) -> None:
        """Refresh soon (e.g. on SIGHUP), whatever the filesystem said."""
        self._changed.set()

    # -- worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        next_refresh = 0.0  # monotonic; 0 = right away
        while not self._stopping.is_set():
            try:
                next_refresh = self._step(next_refresh)
            except Exception:
                # Never die: a bug or an odd filesystem must not stop recognition.
                log.exception("gallery watcher: refresh failed; retrying")
                next_refresh = time.monotonic() + max(self.poll_interval, 1.0)
                self._stopping.wait(1.0)

    def _step(self, next_refresh: float) -> float:
        root_moved = self._follow_root()
        wait = max(0.0, next_refresh - time.monotonic())
        if self._observer is not None:
            wait = min(wait, self.poll_interval)  # also how often a root symlink flip is noticed
        woken = root_moved or self._changed.wait(wait)
        if self._stopping.is_set():
            return next_refresh
        if woken:
            self._settle_events()
        elif time.monotonic() < next_refresh:
            return next_refresh  # a wake-up only to check the root
        update = self.gallery.refresh(self.clock(), budget=INDEXING_SLICE, stop=self._stopping)
        self.last_update = update
        if update.changed or not self._delivered:
            self._delivered = True
            try:
                self.on_update(update)
            except Exception:
                log.exception("gallery watcher: update callback failed")
        interval = self.rescan_interval if self._observer is not None else self.poll_interval
        due = time.monotonic() + interval
        if update.next_settle_at is not None:
            due = min(due, time.monotonic() + max(0.02, update.next_settle_at - self.clock()))
        if not update.indexing.finished:
            due = time.monotonic()  # the backlog goes on right after a look for new events
        return due

    def _settle_events(self) -> None:
        """Debounce: wait until events pause for `debounce`, but not longer than 1 s in all."""
        deadline = time.monotonic() + 1.0
        self._changed.clear()
        while time.monotonic() < deadline and not self._stopping.is_set():
            if not self._changed.wait(self.debounce):
                return
            self._changed.clear()

    # -- watchdog ------------------------------------------------------------------------

    def _follow_root(self) -> bool:
        """(Re)schedule inotify on the resolved root; True when the root changed under us."""
        if not self._use_watchdog:
            return False
        try:
            resolved: Path | None = self.gallery.root.resolve(strict=True)
            if resolved is not None and not resolved.is_dir():
                resolved = None
        except (OSError, RuntimeError):
            resolved = None
        if resolved == self._watched and (resolved is None or self._observer is not None):
            return False
        was_watching = self._watched is not None
        self._stop_observer()
        self._watched = resolved
        if resolved is None:
            return was_watching
        try:
            from watchdog.observers import Observer

            observer = Observer()
            observer.schedule(_Nudge(self._changed.set), str(resolved), recursive=True)
            observer.start()
        except Exception as exc:  # inotify missing or out of watches: polling still works
            log.warning(
                "gallery: cannot watch %s for changes (%s); polling every %gs instead",
                resolved,
                exc,
                self.poll_interval,
            )
            self._use_watchdog = False
            self._watched = None
            return was_watching
        self._observer = observer
        log.info("gallery: watching %s", resolved)
        return was_watching

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is None:
            return
        try:
            observer.stop()
            observer.join(timeout=2.0)
        except Exception:
            log.debug("gallery: stopping the folder observer failed", exc_info=True)
