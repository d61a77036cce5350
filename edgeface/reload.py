"""What a configuration reload (SIGHUP, `cmd/reload`) may change in a running daemon.

Owns: the list of keys applied live and the comparison of the running configuration with a newly
loaded one: which keys changed, which of them take effect now, and which need a restart.
Applied live: the decision settings under `recognition` (`match_threshold`, `unknown_threshold`,
`ambiguity_margin`: the matcher is rebuilt with them at once), every `tracking.*` key (tracks use them from the next frame) and every
`gallery.*` key (the gallery is reopened from the embedding cache and followed with the new
settings). Everything else (camera, models, runtime, the detector and crop settings under
`recognition`, MQTT, the state directory, metrics, unknowns, logging, device) needs a restart.
Never: applies anything itself (the daemon does) or reads files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgeface.config import Config

# What the detector and the face crops are built with (and the gallery cache is keyed by).
RESTART_RECOGNITION = ("min_face_px", "detector_min_score", "margin")
LIVE_SECTIONS = ("recognition.", "tracking.", "gallery.")


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the leaf keys whose values differ between two config dataclasses."""
    if not (dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new)):
        return [prefix.rstrip(".")] if old != new else []
    keys: list[str] = []
    for f in dataclasses.fields(old):
        keys += changed_keys(getattr(old, f.name), getattr(new, f.name), f"{prefix}{f.name}.")
    return keys


def is_live(key: str) -> bool:
    restart = {f"recognition.{name}" for name in RESTART_RECOGNITION}
    return key.startswith(LIVE_SECTIONS) and key not in restart


@dataclass(frozen=True)
class ReloadPlan:
    """The configuration to run with after a reload, and what changed."""

    config: Config  # the running config with every live key taken from the new file
    live: list[str]  # changed keys that take effect now
    restart: list[str]  # changed keys that take effect on restart (logged)

    def section_changed(self, section: str) -> bool:
        return any(key.startswith(f"{section}.") for key in self.live)


def plan_reload(running: Config, loaded: Config) -> ReloadPlan:
    changed = changed_keys(running, loaded)
    live = [key for key in changed if is_live(key)]
    kept = {name: getattr(running.recognition, name) for name in RESTART_RECOGNITION}
    rec = dataclasses.replace(loaded.recognition, **kept)
    config = dataclasses.replace(
        running, recognition=rec, tracking=loaded.tracking, gallery=loaded.gallery
    )
    return ReloadPlan(config, live, [key for key in changed if not is_live(key)])
