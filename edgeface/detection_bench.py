"""`edgeface bench`'s detection section: faces found by size band against what each setting costs.

Owns: running the camera-frame search (`edgeface.regions`) with tiles off, auto and on (and the
configured `camera.roi`) on the same frames, counting the faces each finds per size band against
a reference, and its cost per frame: median milliseconds on this machine and model passes in
multiply-accumulates (one full-frame pass of the region detector = 1, the same on every board).
Frames are a composed 1920x1080 scene of scikit-image's packaged faces at 40-160 px (reference:
where they were pasted) and frames of the bench video (reference: the most thorough search,
256 px tiles with no budget). Never: part of the daemon or of the test suite's timing.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeface.analyzer import FaceAnalyzer, frame_detector
from edgeface.config import Config
from edgeface.regions import FrameDetector, Rect, resolve_roi
from edgeface.samples import packaged_faces
from edgeface.scene import compose_scene
from edgeface.types import Box, ImageBGR

BANDS = ((0, 40), (40, 60), (60, 80), (80, 120), (120, 100_000))
MATCH_IOU = 0.4
# (label, detection.* overrides): the three modes at the configured budget, and tiles without one.
SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("off", {"tiles": "off"}),
    ("auto", {"tiles": "auto"}),
    ("on", {"tiles": "on"}),
    ("on, no max_tiles", {"tiles": "on", "max_tiles": 100_000}),
)


def band_name(band: tuple[int, int]) -> str:
    return f"{band[0]}+" if band[1] >= 100_000 else f"{band[0]}-{band[1]}"


def composed_frames(analyzer: FaceAnalyzer, count: int = 3) -> list[tuple[ImageBGR, list[Box]]]:
    """1920x1080 scenes of the packaged astronaut (and her mirror image) at 40-160 px."""
    photo = packaged_faces().person_photo
    photos = [(p, analyzer.detect(p)[0].box) for p in (photo, cv2.flip(photo, 1))]
    background = cv2.resize(photo, (1920, 1080), interpolation=cv2.INTER_LINEAR)
    background = cv2.GaussianBlur(background, (0, 0), 25)
    rng = np.random.default_rng(16)
    frames = []
    for _ in range(count):
        widths = [float(w) for w in np.linspace(160, 40, 16)]
        scene = compose_scene(photos, background, widths, rng)
        frames.append((scene.image, scene.faces))
    return frames


def video_frames(video: Path, count: int = 12) -> list[ImageBGR]:
    capture = cv2.VideoCapture(str(video))
    total = max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    frames: list[ImageBGR] = []
    index = 0
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            break
        if index % max(1, total // count) == 0:
            frames.append(image)
        index += 1
    capture.release()
    return frames


def _search(cfg: Config, analyzer: FaceAnalyzer, **detection: Any) -> FrameDetector:
    variant = dataclasses.replace(cfg, detection=dataclasses.replace(cfg.detection, **detection))
    cache = Path(cfg.models.cache_dir) if cfg.models.cache_dir else None
    return frame_detector(variant, analyzer.detector, cache, analyzer.detector.settings)


def passes_per_frame(search: FrameDetector, width: int, height: int, region_macs: int) -> float:
    """Model passes of one frame in multiply-accumulates (one region-detector pass over the
    whole frame = 1); a padded retry on an empty frame is not counted."""
    return search.multiply_accumulates(width, height) / region_macs


def _score(search: FrameDetector, frames: list[tuple[ImageBGR, list[Box]]]) -> dict[str, Any]:
    found = {band_name(b): [0, 0] for b in BANDS}
    times = []
    for image, reference in frames:
        start = time.perf_counter()
        boxes = [f.box for f in search.detect(image)]
        times.append(time.perf_counter() - start)
        for ref in reference:
            band = next(b for b in BANDS if b[0] <= ref.w < b[1])
            found[band_name(band)][1] += 1
            found[band_name(band)][0] += any(b.iou(ref) >= MATCH_IOU for b in boxes)
    return {"found": found, "median_ms": round(float(np.median(times)) * 1000, 2)}


def bench_detection(cfg: Config, analyzer: FaceAnalyzer, video: Path) -> dict[str, Any]:
    """Each tile setting (with the configured ROI, if any) on composed and video frames."""
    region_macs = analyzer.detector.multiply_accumulates(640, 480)
    reference = _search(cfg, analyzer, tiles="on", tile_size=256, max_tiles=100_000)
    reference = FrameDetector(
        reference.detector,
        reference.tile_detector,
        dataclasses.replace(reference.settings, roi=None),
    )
    sets: dict[str, list[tuple[ImageBGR, list[Box]]]] = {
        "composed 1920x1080 (pasted faces)": composed_frames(analyzer),
    }
    raw = video_frames(video)
    if raw:
        h, w = raw[0].shape[:2]
        sets[f"video {w}x{h} (reference: 256 px tiles, no budget)"] = [
            (image, [f.box for f in reference.detect(image)]) for image in raw
        ]
    report: dict[str, Any] = {"roi": cfg.camera.roi, "sets": {}}
    for name, frames in sets.items():
        h, w = frames[0][0].shape[:2]
        if cfg.camera.roi is not None:
            roi = resolve_roi(cfg.camera.roi, w, h)
            frames = [(image, [b for b in refs if _inside(b, roi)]) for image, refs in frames]
        rows = []
        for label, overrides in SETTINGS:
            search = _search(cfg, analyzer, **overrides)
            row = {"tiles": label, **_score(search, frames)}
            row["passes"] = round(passes_per_frame(search, w, h, region_macs), 2)
            rows.append(row)
        report["sets"][name] = rows
    return report


def _inside(box: Box, roi: Rect) -> bool:
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    return roi.x <= cx < roi.x + roi.w and roi.y <= cy < roi.y + roi.h


def format_detection(report: dict[str, Any]) -> list[str]:
    roi = report["roi"] and "[" + ", ".join(f"{v:g}" for v in report["roi"]) + "]"
    lines = [
        "",
        "detection: faces found / reference faces by face width in px, and the cost per frame"
        f" (passes = model work in full-frame detector passes){f'; camera.roi {roi}' if roi else ''}",
    ]
    header = f"{'tiles':<17}" + "".join(f"{band_name(b):>10}" for b in BANDS)
    for name, rows in report["sets"].items():
        lines += [name, f"{header} {'ms':>8} {'passes':>7}"]
        for row in rows:
            cells = "".join(f"{f'{a}/{n}' if n else '-':>10}" for a, n in row["found"].values())
            lines.append(
                f"{row['tiles']:<17}{cells} {row['median_ms']:>8.1f} {row['passes']:>7.2f}"
            )
    return lines
