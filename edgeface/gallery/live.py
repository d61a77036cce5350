"""The gallery a running daemon matches against, kept current.

Owns: opening the gallery (without its embedding cache when the state directory cannot hold it),
the first load, following the folder (`GalleryWatcher`), the matcher every camera's engine asks
for (swapped whole under a lock, always with the current decision thresholds), reopening the
gallery when its settings change on reload, and the `gallery` part of the status. Tells
`on_people` who is enrolled after every update (presence, Home Assistant discovery).
Never: runs a model itself (the gallery does, through the shared analyzer), or publishes.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config
from edgeface.gallery.matcher import Matcher, Thresholds
from edgeface.gallery.store import Gallery, GalleryUpdate
from edgeface.gallery.watcher import GalleryWatcher
from edgeface.problems import Problems

log = logging.getLogger(__name__)


class LiveGallery:
    """`load()` once at start, then updates arrive from the watcher thread; `matcher()` from any
    camera thread."""

    def __init__(
        self,
        cfg: Config,
        analyzer: FaceAnalyzer,
        problems: Problems,
        on_people: Callable[[list[str], bool], None],
    ) -> None:
        self.cfg, self.analyzer, self.problems, self.on_people = cfg, analyzer, problems, on_people
        self._matcher = Matcher.empty(self._thresholds())
        self._update: GalleryUpdate | None = None
        # Held while swapping the matcher or the gallery (watcher thread vs reload thread).
        self._lock = threading.Lock()
        self.gallery: Gallery | None = None
        self.watcher: GalleryWatcher | None = None

    def _thresholds(self) -> Thresholds:
        return Thresholds.from_config(self.cfg.recognition)

    def matcher(self) -> Matcher:
        return self._matcher

    @property
    def people(self) -> tuple[str, ...]:
        return tuple(self._matcher.person_names)

    def load(self, stop: threading.Event) -> None:
        """Open and index the gallery (blocks until indexed or `stop`), then follow it."""
        gallery = self._open()
        self.gallery = gallery
        self._on_update(gallery.start_refresh(time.time(), stop))
        if not stop.is_set():
            self.watcher = self._follow(gallery)

    def _open(self) -> Gallery:
        try:
            return Gallery.from_config(self.cfg, self.analyzer)
        except (OSError, sqlite3.Error) as exc:
            # The embedding cache cannot be opened (read-only state_dir, disk full): photos are
            # analysed at every start instead, and the cache file is left as it was.
            self.problems.report(
                f"gallery cache in {self.cfg.state_path} unusable, running without it: "
                f"{getattr(exc, 'strerror', None) or exc}"
            )
            return Gallery(
                Path(self.cfg.gallery.path), self.cfg.gallery, self._thresholds(), self.analyzer
            )

    def _follow(self, gallery: Gallery) -> GalleryWatcher:
        """A started watcher on `gallery`; its updates count only while it is the gallery."""

        def on_update(update: GalleryUpdate) -> None:
            if gallery is self.gallery:
                self._on_update(update)

        watcher = GalleryWatcher.from_gallery_config(gallery, on_update)
        watcher.start()
        return watcher

    def _on_update(self, update: GalleryUpdate) -> None:
        with self._lock:
            # An update computed before a threshold reload still gets the current thresholds.
            self._matcher = update.matcher.with_thresholds(self._thresholds())
            self._update = update
        log.info(
            "gallery %s: %d people, %d usable photos, %d problem(s)",
            update.version[:12],
            len(update.report.people),
            update.report.usable_templates,
            len(update.report.problems),
        )
        self.on_people(list(self._matcher.person_names), update.indexing.finished)

    def reconfigure(self, cfg: Config, reopen: bool) -> None:
        """New settings from a reload: thresholds at once; `reopen` for changed gallery settings
        (answers come from the embedding cache; the matcher in use stays until the new
        gallery's first update). Then a refresh."""
        self.cfg = cfg
        if reopen and self.watcher is not None and self.gallery is not None:
            self.watcher.stop()
            old = self.gallery
            self.gallery = self._open()
            if old.cache is not None:
                old.cache.close()
            self.watcher = self._follow(self.gallery)
        with self._lock:
            if self.gallery is not None:
                self.gallery.thresholds = self._thresholds()
            self._matcher = self._matcher.with_thresholds(self._thresholds())
        if self.watcher is not None:
            self.watcher.request_refresh()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def status(self) -> dict[str, Any]:
        update = self._update
        report = update.report if update else None
        return {
            "version": update.version if update else None,
            "people": len(report.people) if report else 0,
            "templates": report.usable_templates if report else 0,
            "problems": [str(p) for p in report.problems][:20] if report else [],
            "indexing": dataclasses.asdict(update.indexing) if update else None,
        }
