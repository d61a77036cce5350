"""What a configuration reload (SIGHUP, `cmd/reload`) may change in a running daemon.

Owns: the list of keys applied live and the comparison of the running configuration with a newly
loaded one: which keys changed, which of them take effect now, and which need a restart.
Applied live: the decision settings under `recognition` (`match_threshold`, `unknown_threshold`,
`ambiguity_margin`: the matcher is rebuilt with them at once), every `tracking.*` key (tracks use them from the next frame) and every
`gallery.*` key (the gallery is reopened from the embedding cache and followed with the new
settings). Everything else (camera, models, runtime, the detector and crop settings under
`recognition`, MQTT, the state directory, metrics, unknowns, logging, device) needs a restart.
The decision settings belong to an embedder (each has its own score scale): when
`models.embedder` changes too, they wait for the restart that changes the model, so a running
model is never judged with another model's thresholds.
Never: applies anything itself (the daemon does) or reads files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgeface.config import OPERATING_POINT_KEYS, Config

# What the detector and the face crops are built with (and the gallery cache is keyed by).
RESTART_RECOGNITION = ("min_face_px", "detector_min_score", "margin")
LIVE_SECTIONS = ("recognition.", "tracking.", "gallery.")
EMBEDDER_KEY = "models.embedder"
# The embedder's operating point: live unless models.embedder changes with them.
DECISION_KEYS = frozenset(f"recognition.{name}" for name in OPERATING_POINT_KEYS)


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the leaf keys whose values differ between two config dataclasses."""
    if not (dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new)):
        return [prefix.rstrip(".")] if old != new else []
    keys: list[str] = []
    for f in dataclasses.fields(old):
        keys += changed_keys(getattr(old, f.name), getattr(new, f.name), f"{prefix}{f.name}.")
    return keys


def is_live(key: str, embedder_changed: bool = False) -> bool:
    restart = {f"recognition.{name}" for name in RESTART_RECOGNITION}
    if embedder_changed:
        restart |= DECISION_KEYS
    return key.startswith(LIVE_SECTIONS) and key not in restart


def _value(cfg: Config, key: str) -> Any:
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


@dataclass(frozen=True)
class ReloadPlan:
    """The configuration to run with after a reload, and what changed."""

    config: Config  # the running config with every live key taken from the new file
    live: list[str]  # changed keys that take effect now
    restart: list[str]  # changed keys that take effect on restart (logged)

    def section_changed(self, section: str) -> bool:
        return any(key.startswith(f"{section}.") for key in self.live)

    def postponed(self) -> str:
        """The changes left for a restart, for the reload's warning line."""
        text = f"{', '.join(self.restart)} changed; takes effect on restart"
        if EMBEDDER_KEY in self.restart and DECISION_KEYS.intersection(self.restart):
            text += " (the decision settings go with models.embedder)"
        return text

    def applied(self) -> str:
        """The live changes with their new values, for the reload's log line."""
        return ", ".join(f"{key}={_value(self.config, key)!r}" for key in self.live)


def plan_reload(running: Config, loaded: Config) -> ReloadPlan:
    changed = changed_keys(running, loaded)
    embedder_changed = EMBEDDER_KEY in changed
    live = [key for key in changed if is_live(key, embedder_changed)]
    held = RESTART_RECOGNITION + (tuple(OPERATING_POINT_KEYS) if embedder_changed else ())
    kept = {name: getattr(running.recognition, name) for name in held}
    rec = dataclasses.replace(loaded.recognition, **kept)
    config = dataclasses.replace(
        running, recognition=rec, tracking=loaded.tracking, gallery=loaded.gallery
    )
    restart = [key for key in changed if key not in live]
    return ReloadPlan(config, live, restart)
