"""Raspberry Pi camera modules (CSI) through picamera2, the supported way on current Pi OS.

Owns: opening a `picamera2:N` source with the configured stream size, sensor mode and frame
rate, and adapting it to the capture interface `LiveSource` reads (`read()` / `release()`), so
newest-frame-only delivery, frame-rate capping and reconnecting with backoff are the same as for
every live source. Never: detection or face logic.

On Raspberry Pi OS, libcamera drives CSI cameras and OpenCV cannot open them as V4L2 devices.
picamera2 comes from the OS's apt repository (`apt install python3-picamera2`), so the daemon's
venv must see system site packages (`python3 -m venv --system-site-packages`). Only the
documented picamera2 API is used: `Picamera2(camera_num)`, `create_video_configuration(main=,
controls=, sensor=)`, `configure`, `start`, `capture_array`, `stop`, `close`.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import numpy as np
import numpy.typing as npt

from edgeface.config import PiCamera2Config
from edgeface.errors import EdgefaceError

log = logging.getLogger(__name__)
PREFIX = "picamera2:"
INSTALL_HINT = (
    "apt install python3-picamera2, and create the venv with --system-site-packages"
    " (README: On a Raspberry Pi)"
)


def is_picamera_source(source: str) -> bool:
    return source.startswith(PREFIX)


def camera_number(source: str) -> int:
    number = source[len(PREFIX) :] or "0"
    if not number.isdigit():
        raise EdgefaceError(
            f"camera.source {source!r}: expected picamera2:N with N a camera number"
        )
    return int(number)


def load_picamera2(source: str) -> Any:
    """The Picamera2 class; a missing package is a setup error, not an outage to retry."""
    try:
        return importlib.import_module("picamera2").Picamera2
    except ImportError:
        raise EdgefaceError(
            f"camera.source {source!r}: picamera2 is not installed ({INSTALL_HINT})"
        ) from None


class PiCameraCapture:
    """One started picamera2 camera behind `read()`/`release()`, like `cv2.VideoCapture`.

    Frames are RGB888, which libcamera lays out as B, G, R bytes: OpenCV's BGR order already.
    """

    def __init__(
        self, picamera2_class: Any, source: str, settings: PiCamera2Config, fps_cap: float
    ) -> None:
        self.source = source
        try:
            self._camera = picamera2_class(camera_number(source))
        except (RuntimeError, IndexError, OSError) as exc:  # busy, absent, or unplugged
            raise OSError(f"camera.source {source!r}: cannot be opened ({exc})") from None
        try:
            config = self._camera.create_video_configuration(
                main={"size": settings.size, "format": "RGB888"},
                controls={"FrameRate": settings.frame_rate or fps_cap},
                **(
                    {"sensor": {"output_size": settings.sensor_size}}
                    if settings.sensor_size
                    else {}
                ),
            )
            self._camera.configure(config)
            self._camera.start()
        except (RuntimeError, ValueError, OSError) as exc:
            self._camera.close()
            raise OSError(f"camera.source {source!r}: cannot be started ({exc})") from None

    def read(self) -> tuple[bool, npt.NDArray[np.uint8] | None]:
        try:
            return True, self._camera.capture_array("main")
        except (RuntimeError, OSError, TimeoutError) as exc:
            log.warning("camera.source %r: capture failed (%s)", self.source, exc)
            return False, None

    def release(self) -> None:
        for step in (self._camera.stop, self._camera.close):
            try:
                step()
            except (RuntimeError, OSError) as exc:  # a camera that is gone cannot stop cleanly
                log.debug("camera.source %r: %s", self.source, exc)


def picamera_opener(source: str, settings: PiCamera2Config, fps_cap: float) -> Any:
    """An opener for `LiveSource`: each call (first open, every reconnect) starts the camera."""
    picamera2_class = load_picamera2(source)
    camera_number(source)  # a malformed number is refused before the first open

    def open_camera(_source: str) -> PiCameraCapture:
        return PiCameraCapture(picamera2_class, source, settings, fps_cap)

    return open_camera
