"""What a valid config needs from this machine, checked the way the daemon checks it at start.

Owns: `edgeface config check` beyond the file's own syntax: the MQTT password (file readable,
environment variable set), the TLS certificate files, and the detector and embedder (a manifest
name or an existing .tflite/.onnx file). It calls the same functions the daemon uses, so a config
that passes here is not refused by the daemon for these reasons. Never: loads a model, opens a
socket or a camera; a model that is known but not built yet is a note, not an error.
"""

from __future__ import annotations

from pathlib import Path

from edgeface.config import Config, ConfigError, check_tls_files, read_password
from edgeface.errors import EdgefaceError
from edgeface.models import MODEL_SUFFIXES, find_model, load_manifest


def check_machine(cfg: Config) -> list[str]:
    """Raise ConfigError for what the daemon would refuse; return notes for what it would not."""
    read_password(cfg.mqtt)
    check_tls_files(cfg.mqtt.tls)
    cache = Path(cfg.models.cache_dir) if cfg.models.cache_dir else None
    notes = []
    for key in ("detector", "embedder"):
        note = _check_model(f"models.{key}", getattr(cfg.models, key), cache)
        if note:
            notes.append(note)
    return notes


def _check_model(key: str, name: str, cache: Path | None) -> str | None:
    try:
        if not name.endswith(MODEL_SUFFIXES):
            load_manifest().get(name)  # an unknown name is an error, built or not
    except EdgefaceError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    try:
        find_model(name, cache)
    except EdgefaceError as exc:
        if name.endswith(MODEL_SUFFIXES):
            raise ConfigError(f"{key}: {exc}") from None
        return f"{key}: {exc}"
    return None
