"""Typed configuration: YAML file -> frozen dataclasses, validated with errors that name the key.

Owns: every configuration key, its type, default and allowed range; unknown keys are errors
(they are usually typos). Never: opens cameras, sockets or models; stages get plain values.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from edgeface.errors import EdgefaceError
from edgeface.files import read_regular_file, require_regular_file

MAX_CONFIG_BYTES = 1024 * 1024


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"min": lo, "max": hi}


@dataclass(frozen=True)
class DeviceConfig:
    id: str = "edgeface"
    name: str = "edgeface"


@dataclass(frozen=True)
class PiCamera2Config:
    """A `picamera2:N` source (Raspberry Pi camera module): stream size, rate, sensor mode."""

    size: tuple[int, int] = field(default=(1280, 720), metadata=_range(16, 8192))
    frame_rate: float | None = field(default=None, metadata=_range(0.1, 240))  # None: fps_cap
    # A sensor mode's output size (e.g. [2304, 1296] on Camera Module 3); None: libcamera picks.
    sensor_size: tuple[int, int] | None = field(default=None, metadata=_range(16, 16384))


@dataclass(frozen=True)
class CameraConfig:
    # A V4L2 index ("0"), a device path, a video file, an rtsp:// / http:// URL, or picamera2:N
    # (a Raspberry Pi camera module through picamera2; settings under camera.picamera2).
    source: str = "0"
    name: str = "camera"
    loop: bool = False
    # Video files: play in real time like a camera (false: as fast as possible, for benchmarks).
    realtime: bool = True
    fps_cap: float = field(default=15.0, metadata=_range(0.1, 240))
    # [x, y, w, h] where faces can appear, in whole frame pixels (or fractions when all are <= 1,
    # then x + w and y + h at most 1): detection runs on this part only, at full resolution;
    # boxes stay in frame pixels. A pixel region beyond the frame is logged at the first frame.
    roi: tuple[float, float, float, float] | None = field(default=None, metadata=_range(0, 1e5))
    reconnect_max_backoff: float = field(default=30.0, metadata=_range(0.1, 3600))
    picamera2: PiCamera2Config = field(default_factory=PiCamera2Config)
    # This camera's own `detection` keys (the rest from the top-level `detection`); None: all
    # from the top level. See `Config.detection_for`.
    detection: DetectionConfig | None = None


@dataclass(frozen=True)
class GalleryConfig:
    path: str = "gallery"
    watch: bool = True
    poll_interval: float = field(default=1.0, metadata=_range(0.05, 3600))
    settle_seconds: float = field(default=0.5, metadata=_range(0, 60))
    min_face_px: int = field(default=40, metadata=_range(8, 10000))
    min_sharpness: float = field(default=15.0, metadata=_range(0, 1e6))


@dataclass(frozen=True)
class ModelsConfig:
    detector: str = "yunet"
    embedder: str = "sface-dynamic"
    cache_dir: str | None = None


@dataclass(frozen=True)
class DetectionConfig:
    """How camera frames are searched: resolution (YuNet) and the tile pass (BlazeFace)."""

    # The smallest face (px, in frame pixels) camera frames and photos are searched for: YuNet
    # shrinks each image so such a face still spans 14 px of its input. Lower finds smaller
    # faces at more cost (cost grows with 1/min_face_px^2). BlazeFace's input is fixed (tiles).
    min_face_px: int = field(default=40, metadata=_range(8, 10000))
    # Off by default: tiles find more faces and also more false ones (below), and a false face
    # becomes an `unknown` event; turn them on with a camera.roi where faces are far away.
    tiles: Literal["off", "auto", "on"] = "off"
    tile_detector: str = "blazeface-short"  # a name from models/manifest.yaml
    tile_size: int = field(default=256, metadata=_range(64, 10000))
    max_tiles: int = field(default=12, metadata=_range(1, 1000))
    # Texture in a small tile looks like a face to the short-range model more often than a
    # whole frame does to the full-range one (11 false faces in 16 no-face 1080p photos at 0.5,
    # scoring 0.53-0.69; none at 0.7, where one 40 px real face of six was lost): a face found
    # only in a tile must score at least this. Raise it if tiles report faces in the scenery.
    tile_min_score: float = field(default=0.5, metadata=_range(0.01, 1))


# More interpreter threads than this do not speed up batch-1 BlazeFace/FaceNet on a Pi 4/5.
MAX_DEFAULT_THREADS = 4


def default_num_threads() -> int:
    """One interpreter thread per CPU core, at most MAX_DEFAULT_THREADS (Zero 2 W, Pi 4, Pi 5: 4)."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_THREADS))


@dataclass(frozen=True)
class RuntimeConfig:
    # null (or left out): default_num_threads().
    num_threads: int = field(
        default_factory=default_num_threads, metadata={**_range(1, 64), "null_is_default": True}
    )
    delegate: str | None = None
    delegate_fallback: Literal["cpu", "refuse"] = "cpu"


@dataclass(frozen=True)
class RecognitionConfig:
    # The three decision settings default to the embedder's operating point in the model
    # manifest (set by `parse_config`); these literals are the default embedder's, and a test
    # keeps them equal. A number in the config file always wins.
    match_threshold: float = field(default=0.45, metadata=_range(-1, 1))
    unknown_threshold: float = field(default=0.35, metadata=_range(-1, 1))
    # A match closer than this to the runner-up person is uncertain, not a name.
    ambiguity_margin: float = field(default=0.1, metadata=_range(0, 2))
    # A face whose head is turned further than this (nose offset from the eyes' midpoint, in eye
    # distances; needs a detector with landmarks, YuNet) is uncertain, never named.
    max_turn: float = field(default=1.0, metadata=_range(0, 100))
    min_face_px: int = field(default=32, metadata=_range(8, 10000))
    # None: the detector's own, measured on no-face scenes (blazeface 0.5, yunet 0.7).
    detector_min_score: float | None = field(default=None, metadata=_range(0.01, 1))
    margin: float = field(default=0.2, metadata=_range(0, 2))


@dataclass(frozen=True)
class TrackingConfig:
    iou_threshold: float = field(default=0.3, metadata=_range(0.01, 1))
    votes_to_decide: int = field(default=3, metadata=_range(1, 100))
    lost_after: float = field(default=1.5, metadata=_range(0.05, 3600))
    recheck_interval: float = field(default=2.0, metadata=_range(0.1, 3600))


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = field(default=1883, metadata=_range(1, 65535))
    topic_prefix: str = "edgeface"
    client_id: str | None = None
    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    keepalive: int = field(default=30, metadata=_range(5, 3600))
    qos: int = field(default=1, metadata=_range(0, 2))
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    tls: TlsConfig = field(default_factory=TlsConfig)
    outbox_max: int = field(default=10000, metadata=_range(10, 10_000_000))
    snapshots: bool = False
    status_interval: float = field(default=30.0, metadata=_range(1, 86400))
    presence_timeout: float = field(default=300.0, metadata=_range(1, 864000))
    ha_discovery: bool = False
    ha_prefix: str = "homeassistant"


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus endpoint with the figures of `status` (needs the `metrics` extra)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = field(default=9420, metadata=_range(1, 65535))


@dataclass(frozen=True)
class UnknownsConfig:
    """Keeping the best crop of each unknown visitor, grouped, so they can be enrolled later."""

    enabled: bool = False
    retention: float = field(default=7 * 86400.0, metadata=_range(60, 365 * 86400))
    max_crops: int = field(default=1000, metadata=_range(1, 1_000_000))
    cluster_threshold: float | None = field(default=None, metadata=_range(-1, 1))


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    # `camera` (one) or `cameras` (a list, then `camera` is its first): see `all_cameras`.
    camera: CameraConfig = field(default_factory=CameraConfig)
    cameras: tuple[CameraConfig, ...] = ()
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    state_dir: str = "state"
    models: ModelsConfig = field(default_factory=ModelsConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    unknowns: UnknownsConfig = field(default_factory=UnknownsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    def __post_init__(self) -> None:
        # With `cameras`, `camera` is always the first of them (code reading `camera` sees it).
        if self.cameras and self.camera != self.cameras[0]:
            object.__setattr__(self, "camera", self.cameras[0])

    @property
    def all_cameras(self) -> tuple[CameraConfig, ...]:
        """Every camera: the `cameras` list, or the one `camera`."""
        return self.cameras or (self.camera,)

    def detection_for(self, camera: CameraConfig) -> DetectionConfig:
        """How `camera`'s frames are searched: its own `detection`, else the top-level one."""
        return camera.detection or self.detection


class ConfigError(EdgefaceError):
    """A config file or value is invalid; the message names the file and the key."""


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(value: Any, hint: Any, key: str, meta: dict[str, Any]) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, options[0], key, meta)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if isinstance(value, bool) and {"on", "off"} <= set(allowed):
            value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as a boolean
        if str(value) not in allowed:
            raise ConfigError(
                f"{key}: expected one of {', '.join(allowed)}, got {_describe(value)}"
            )
        return str(value)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is tuple and typing.get_args(hint)[1:] == (Ellipsis,):
        item = typing.get_args(hint)[0]
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{key}: expected a non-empty list, got {_describe(value)}")
        return tuple(_convert(v, item, f"{key}[{i}]", meta) for i, v in enumerate(value))
    if origin is tuple:
        items = typing.get_args(hint)
        if not isinstance(value, list | tuple) or len(value) != len(items):
            raise ConfigError(
                f"{key}: expected a list of {len(items)} numbers, got {_describe(value)}"
            )
        return tuple(_convert(v, h, key, meta) for v, h in zip(value, items, strict=True))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_describe(value)}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {_describe(value)}")
        if hint is int and not float(value).is_integer():
            raise ConfigError(f"{key}: expected a whole number, got {_describe(value)}")
        number = hint(value)
        lo, hi = meta.get("min"), meta.get("max")
        # NaN compares false with everything, so it must be refused on its own (YAML `.nan`).
        if (
            not math.isfinite(number)
            or (lo is not None and number < lo)
            or (hi is not None and number > hi)
        ):
            raise ConfigError(f"{key}: expected a value from {lo} to {hi}, got {number}")
        return number
    if hint is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{key}: expected a string, got {_describe(value)}")
        return str(value)
    raise ConfigError(f"{key}: unsupported type")  # pragma: no cover - schema bug


def _build(cls: Any, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = prefix or "top level"
        raise ConfigError(f"{where}: expected a mapping of keys, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            # repr() for odd keys keeps the message on one line (a key may hold a newline).
            shown = key if isinstance(key, str) and key.isprintable() else repr(key)
            full = f"{prefix}.{shown}" if prefix else str(shown)
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{full}: unknown key (known here: {known})")
    values = {}
    for name, f in fields.items():
        if name in data and not (data[name] is None and f.metadata.get("null_is_default")):
            full = f"{prefix}.{name}" if prefix else name
            values[name] = _convert(data[name], hints[name], full, dict(f.metadata))
    return cls(**values)


OPERATING_POINT_KEYS = {
    "match_threshold": "match",
    "unknown_threshold": "unknown",
    "ambiguity_margin": "margin",
}


def _follow_model_operating_point(cfg: Config, data: Any) -> Config:
    """Decision settings the file leaves out come from the configured embedder's manifest entry.

    Each FaceNet build has its own score scale, so a threshold only means something together
    with its model; switching models in the config switches thresholds with it. A model file
    outside the manifest keeps the built-in defaults.
    """
    from edgeface.models import load_manifest  # reads YAML only; no model is loaded

    spec = load_manifest().models.get(cfg.models.embedder)
    if spec is None or spec.operating_point is None:
        return cfg
    given = (data or {}).get("recognition") or {}
    point = spec.operating_point
    values = {
        key: getattr(point, attr) for key, attr in OPERATING_POINT_KEYS.items() if key not in given
    }
    if "match_threshold" in given and "unknown_threshold" not in given:
        values["unknown_threshold"] = min(point.unknown, cfg.recognition.match_threshold)
    return dataclasses.replace(cfg, recognition=dataclasses.replace(cfg.recognition, **values))


def with_embedder(cfg: Config, embedder: str) -> Config:
    """`cfg` with another embedder; decision settings that followed the old model follow the new.

    Settings that differ from the old model's operating point were chosen by the user and stay.
    """
    from edgeface.models import load_manifest

    models = load_manifest().models
    old, new = models.get(cfg.models.embedder), models.get(embedder)
    switched = dataclasses.replace(cfg, models=dataclasses.replace(cfg.models, embedder=embedder))
    if old is None or new is None or old.operating_point is None or new.operating_point is None:
        return switched
    rec = cfg.recognition
    values = {}
    for key, attr in OPERATING_POINT_KEYS.items():
        if getattr(rec, key) == getattr(old.operating_point, attr):
            values[key] = getattr(new.operating_point, attr)
    return dataclasses.replace(switched, recognition=dataclasses.replace(rec, **values))


def _with_camera_detection(data: Any) -> Any:
    """The raw document with each camera's `detection` completed from the top-level one, so a
    camera names only the keys it changes."""
    if not isinstance(data, dict):
        return data
    if "camera" in data and "cameras" in data:
        raise ConfigError("cameras: expected either camera (one) or cameras (a list), not both")
    shared = data.get("detection")
    if not isinstance(shared, dict):
        return data

    def merged(camera: Any) -> Any:
        own = camera.get("detection") if isinstance(camera, dict) else None
        if not isinstance(own, dict):
            return camera
        return {**camera, "detection": {**shared, **own}}

    data = dict(data)
    if isinstance(data.get("cameras"), list):
        data["cameras"] = [merged(c) for c in data["cameras"]]
    if "camera" in data:
        data["camera"] = merged(data["camera"])
    return data


def camera_key(cfg: Config, index: int) -> str:
    """How the file names camera `index`: `camera` for a one-camera config, else `cameras[i]`."""
    return f"cameras[{index}]" if cfg.cameras else "camera"


def _check_cameras(cfg: Config) -> None:
    seen: dict[str, int] = {}
    for i, camera in enumerate(cfg.all_cameras):
        key = camera_key(cfg, i)
        if camera.roi is not None:
            _check_roi(camera.roi, f"{key}.roi")
        if not camera.name.strip():
            raise ConfigError(f"{key}.name: expected a name, got {camera.name!r}")
        if camera.name in seen:
            raise ConfigError(
                f"{key}.name: {camera.name!r} is already the name of cameras[{seen[camera.name]}]"
                " (events say which camera by name)"
            )
        seen[camera.name] = i


def _check_roi(roi: tuple[float, float, float, float], key: str) -> None:
    """Refuse a region that lies outside any frame; pixels are checked at the first frame."""
    x, y, w, h = roi
    shown = [int(v) if v.is_integer() else v for v in roi]
    if w <= 0 or h <= 0:
        raise ConfigError(f"{key}: expected a width and height above 0, got {shown}")
    if max(roi) <= 1:
        if x + w > 1 or y + h > 1:
            raise ConfigError(
                f"{key}: as fractions of the frame, x + w and y + h must be at most 1, got {shown}"
            )
    elif not all(v.is_integer() for v in roi):
        # Values above 1 are pixels; a fraction among them ([0.1, 0.1, 2, 2]) is a mix-up.
        raise ConfigError(
            f"{key}: expected [x, y, w, h] as four fractions of the frame (all at most 1)"
            f" or four whole pixel numbers, got {shown}"
        )


def _check_consistency(cfg: Config) -> None:
    rec = cfg.recognition
    _check_cameras(cfg)
    if rec.unknown_threshold > rec.match_threshold:
        raise ConfigError(
            "recognition.unknown_threshold: expected at most recognition.match_threshold"
            f" ({rec.match_threshold}), got {rec.unknown_threshold}"
        )
    if not cfg.device.id or any(c in cfg.device.id for c in "/#+ "):
        raise ConfigError(
            f"device.id: expected a name without / # + or spaces, got {cfg.device.id!r}"
        )
    if any(c in cfg.mqtt.topic_prefix for c in "#+") or not cfg.mqtt.topic_prefix:
        raise ConfigError(
            f"mqtt.topic_prefix: expected a topic without # or +, got {cfg.mqtt.topic_prefix!r}"
        )
    mqtt = cfg.mqtt
    if not mqtt.ha_prefix or any(c in mqtt.ha_prefix for c in "#+"):
        raise ConfigError(
            f"mqtt.ha_prefix: expected a topic without # or +, got {mqtt.ha_prefix!r}"
        )
    if (mqtt.password_file or mqtt.password_env) and not mqtt.username:
        raise ConfigError("mqtt.username: a password is configured, so a username is expected")
    tls = mqtt.tls
    if bool(tls.cert_file) != bool(tls.key_file):
        raise ConfigError("mqtt.tls.cert_file: cert_file and key_file must be given together")


def parse_config(data: Any, origin: str = "config") -> Config:
    """Validate a parsed YAML document; errors are prefixed with `origin`."""
    try:
        cfg = _build(Config, _with_camera_detection(data), "")
        cfg = _follow_model_operating_point(cfg, data)
        _check_consistency(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    return cfg


def load_config(path: Path) -> Config:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = read_regular_file(path, MAX_CONFIG_BYTES, "a YAML config file").decode("utf-8")
    except EdgefaceError as exc:
        raise ConfigError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from exc
    cfg = parse_config(data, str(path))
    return _resolve_relative_paths(cfg, path.parent)


def _resolve_relative_paths(cfg: Config, base: Path) -> Config:
    """Relative paths in a config file are relative to the file, not the working directory."""

    def resolve(value: str | None) -> str | None:
        if value is None or os.path.isabs(value):
            return value
        return str((base / value).resolve())

    def resolve_source(camera: CameraConfig) -> CameraConfig:
        source = camera.source
        is_local_file = not (
            source.isdigit() or "://" in source or source.startswith(("/dev/", "picamera2:"))
        )
        return (
            dataclasses.replace(camera, source=resolve(source) or source)
            if is_local_file
            else camera
        )

    camera = resolve_source(cfg.camera)
    cameras = tuple(resolve_source(c) for c in cfg.cameras)
    tls = cfg.mqtt.tls
    models = cfg.models

    from edgeface.models import MODEL_SUFFIXES  # .tflite (BlazeFace, FaceNet), .onnx (YuNet)

    def resolve_model(value: str) -> str:
        return (resolve(value) or value) if value.endswith(MODEL_SUFFIXES) else value

    return dataclasses.replace(
        cfg,
        models=dataclasses.replace(
            models,
            detector=resolve_model(models.detector),
            embedder=resolve_model(models.embedder),
            cache_dir=resolve(models.cache_dir),
        ),
        state_dir=resolve(cfg.state_dir) or cfg.state_dir,
        gallery=dataclasses.replace(cfg.gallery, path=resolve(cfg.gallery.path) or ""),
        camera=camera,
        cameras=cameras,
        mqtt=dataclasses.replace(
            cfg.mqtt,
            password_file=resolve(cfg.mqtt.password_file),
            tls=dataclasses.replace(
                tls,
                ca_file=resolve(tls.ca_file),
                cert_file=resolve(tls.cert_file),
                key_file=resolve(tls.key_file),
            ),
        ),
    )


def check_tls_files(tls: TlsConfig) -> None:
    """With TLS enabled, each certificate file named must be an existing regular file."""
    if not tls.enabled:
        return
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, key)
        if path:
            try:
                require_regular_file(Path(path), "a PEM file")
            except EdgefaceError as exc:
                raise ConfigError(f"mqtt.tls.{key}: {exc}") from None


def read_password(cfg: MqttConfig) -> str | None:
    """The MQTT password from its file or environment variable; never logged."""
    if cfg.password_file:
        try:
            data = read_regular_file(Path(cfg.password_file), 64 * 1024, "a password file")
            return data.decode("utf-8").strip()
        except EdgefaceError as exc:
            raise ConfigError(f"mqtt.password_file: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"mqtt.password_file: {cfg.password_file}: not UTF-8 text") from None
    if cfg.password_env:
        value = os.environ.get(cfg.password_env)
        if value is None:
            raise ConfigError(
                f"mqtt.password_env: environment variable {cfg.password_env} is not set"
            )
        return value
    return None
