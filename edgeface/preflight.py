"""What a valid config needs from this machine, checked the way the daemon checks it at start.

Owns: `edgeface config check` beyond the file's own syntax: the MQTT password (file readable,
environment variable set) and the TLS certificate files when MQTT is enabled, and each model key
(`models.detector`, `models.embedder`, `detection.tile_detector`): a manifest name whose `kind`
fits the key (`edgeface.roles`), or an existing .tflite (or YuNet .onnx) file. It calls the same functions the
daemon uses, so a config that passes here is not refused by the daemon for these reasons. Never:
loads a model (a raw model file's role is checked by the daemon once loaded), opens a socket
or a camera; a model that is known but not built yet is a note, not an error. Also says which
cameras the daemon will run (`camera:` is one; `cameras:` lists several run by one daemon),
without the credentials a stream URL may hold.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgeface.config import Config, ConfigError, camera_key, check_tls_files, read_password
from edgeface.errors import EdgefaceError
from edgeface.models import find_model
from edgeface.roles import MODEL_ROLES, check_role, is_model_file


def check_machine(cfg: Config) -> list[str]:
    """Raise ConfigError for what the daemon would refuse; return notes for what it would not."""
    if cfg.mqtt.enabled:  # off: the daemon never reads them
        read_password(cfg.mqtt)
        check_tls_files(cfg.mqtt.tls)
    cache = Path(cfg.models.cache_dir) if cfg.models.cache_dir else None
    notes = []
    for key in MODEL_ROLES:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if key == "detection.tile_detector" and cfg.detection.tiles == "off":
            check_role(key, value)  # never loaded with tiles off, but still no embedder here
        elif note := _check_model(key, value, cache):
            notes.append(note)
    for i, camera in enumerate(cfg.all_cameras):
        if camera.detection is not None and camera.detection.tiles != "off":
            key = f"{camera_key(cfg, i)}.detection.tile_detector"
            if note := _check_model(key, camera.detection.tile_detector, cache):
                notes.append(note)
    return notes


def describe_cameras(cfg: Config) -> list[str]:
    """What `config check` says about the cameras: one line each, the source without secrets."""
    cameras = cfg.all_cameras
    lines = []
    if cfg.cameras:
        lines.append(
            f"cameras: {len(cameras)} in one daemon (models, gallery and MQTT connection"
            " shared; a tracker each; events name the camera)"
        )
    for i, camera in enumerate(cameras):
        roi = [int(v) if v.is_integer() else v for v in camera.roi or ()]
        extras = [f"roi {roi}"] if roi else []
        det = cfg.detection_for(camera)
        if det.tiles != "off":
            extras.append(f"tiles {det.tiles} ({det.tile_detector})")
        shown = re.sub(r"://[^/@]*@", "://***@", camera.source)
        where = f" ({', '.join(extras)})" if extras else ""
        lines.append(f"{camera_key(cfg, i)}: {camera.name} <- {shown}{where}")
    return lines


def _check_model(key: str, name: str, cache: Path | None) -> str | None:
    check_role(key, name)
    try:
        find_model(name, cache)
    except EdgefaceError as exc:
        if is_model_file(name):
            raise ConfigError(f"{key}: {exc}") from None
        return f"{key}: {exc}"
    return None
