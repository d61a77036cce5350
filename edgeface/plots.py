"""Small line charts drawn with OpenCV (no plotting dependency on a device or in CI).

Owns: axes, log scales, one colour and label per series, writing the PNG. Never: computes the
figures it draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import EdgefaceError

_COLOURS = [(200, 60, 30), (30, 140, 30), (30, 30, 200), (150, 0, 150), (0, 150, 150)]
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Axis:
    label: str
    lo: float
    hi: float
    log: bool = False

    def fraction(self, value: float) -> float:
        if self.log:
            value, lo, hi = np.log10(max(value, self.lo)), np.log10(self.lo), np.log10(self.hi)
        else:
            lo, hi = self.lo, self.hi
        return float(np.clip((value - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else 0.0


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    x: Axis,
    y: Axis,
    out: Path,
    title: str = "",
) -> None:
    w, h, pad = 720, 480, 70
    img = np.full((h, w, 3), 255, np.uint8)
    left, top, right, bottom = pad, pad // 2 + 10, w - pad // 2, h - pad
    cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)
    for k, (name, points) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        pixels = [
            (
                int(left + x.fraction(px) * (right - left)),
                int(bottom - y.fraction(py) * (bottom - top)),
            )
            for px, py in points
        ]
        if len(pixels) > 1:
            cv2.polylines(img, [np.array(pixels, np.int32)], False, colour, 2)
        if len(pixels) <= 20:  # markers for measured points, not for dense curves
            for p in pixels:
                cv2.circle(img, p, 3, colour, -1)
        cv2.putText(img, name, (left + 10, top + 20 + 20 * k), _FONT, 0.5, colour, 1)
    for axis_value, anchor in ((x.lo, (left, bottom + 18)), (x.hi, (right - 40, bottom + 18))):
        cv2.putText(img, f"{axis_value:g}", anchor, _FONT, 0.4, (0, 0, 0), 1)
    for axis_value, anchor in ((y.lo, (10, bottom)), (y.hi, (10, top + 10))):
        cv2.putText(img, f"{axis_value:g}", anchor, _FONT, 0.4, (0, 0, 0), 1)
    x_label = f"{x.label}{' (log)' if x.log else ''}"
    cv2.putText(img, x_label, (w // 2 - 80, h - 20), _FONT, 0.5, (0, 0, 0), 1)
    cv2.putText(
        img, y.label + (" (log)" if y.log else ""), (10, top - 10), _FONT, 0.5, (0, 0, 0), 1
    )
    if title:
        cv2.putText(img, title, (w // 2 - 120, 20), _FONT, 0.5, (0, 0, 0), 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), img):
        raise EdgefaceError(f"--plot {out}: cannot write the image")
