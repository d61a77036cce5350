"""`edgeface bench`'s detection section: each detector setting's recall, precision and cost.

Owns: running the camera-frame search (`edgeface.regions`) of several detector settings
(BlazeFace with tiles off, auto, on and without a tile budget; YuNet at two smallest-face
sizes; with the configured `camera.roi`) on the same frames, and reporting per setting: faces
found per size band on composed 1920x1080 scenes (real faces pasted at 40-160 px into the
no-face scenes; reference: where they were pasted), false faces per 100 no-face frames at
1920x1080 and 640x480 (`edgeface.noface`; each would be an `unknown` event), multiply-adds
per frame (the same on every board; BlazeFace's padded retry on an empty frame not counted)
with its ratio to BlazeFace full-range's single pass, and median milliseconds on this machine.
Never: part of the daemon or of the test suite's timing.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeface.analyzer import frame_detector
from edgeface.config import Config
from edgeface.detect import DetectorSettings
from edgeface.detectors import default_min_score, load_detector
from edgeface.errors import EdgefaceError
from edgeface.models import find_model
from edgeface.noface import SMALL_FRAME, no_face_scenes
from edgeface.regions import FrameDetector, Rect, resolve_roi
from edgeface.samples import packaged_faces
from edgeface.scene import compose_scene
from edgeface.types import Box, ImageBGR

BANDS = ((0, 40), (40, 60), (60, 80), (80, 120), (120, 100_000))
# (label, models.detector, detection.* overrides), all on the same frames.
SETTINGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("blazeface-full, tiles off", "blazeface-full", {"tiles": "off"}),
    ("blazeface-full, tiles auto", "blazeface-full", {"tiles": "auto"}),
    ("blazeface-full, tiles on", "blazeface-full", {"tiles": "on"}),
    ("blazeface-full, tiles on, no max", "blazeface-full", {"tiles": "on", "max_tiles": 100_000}),
    ("yunet, min_face_px 40", "yunet", {"min_face_px": 40}),
    ("yunet, min_face_px 24", "yunet", {"min_face_px": 24}),
)
# The unit of cost: one pass of the full-range BlazeFace (what the 640x480 default used to cost).
BASELINE_DETECTOR = "blazeface-full"


def band_name(band: tuple[int, int]) -> str:
    return f"{band[0]}+" if band[1] >= 100_000 else f"{band[0]}-{band[1]}"


def found_by(reference: Box, boxes: list[Box]) -> bool:
    """A detection is the pasted face when its centre lies in the face's box and its width is
    within a factor of two: detectors frame a face differently (YuNet includes the forehead)."""
    for b in boxes:
        cx, cy = b.x + b.w / 2, b.y + b.h / 2
        inside = reference.x <= cx <= reference.x + reference.w
        inside = inside and reference.y <= cy <= reference.y + reference.h
        if inside and 0.5 <= b.w / reference.w <= 2.0:
            return True
    return False


def composed_frames(backgrounds: list[ImageBGR]) -> list[tuple[ImageBGR, list[Box]]]:
    """The packaged astronaut (and her mirror image) at 160 to 40 px on each background."""
    photo = packaged_faces().person_photo
    # Her face in scikit-image's 512x512 photo: YuNet's box is 93 px wide, BlazeFace's 105, both
    # centred within 4 px of this one.
    face = Box(175.0, 69.0, 100.0, 100.0)
    mirrored = Box(photo.shape[1] - face.x - face.w, face.y, face.w, face.h)
    photos = [(photo, face), (cv2.flip(photo, 1), mirrored)]
    rng = np.random.default_rng(16)
    widths = [float(w) for w in np.linspace(160, 40, 16)]
    frames = []
    for background in backgrounds:
        scene = compose_scene(photos, background, widths, rng)
        frames.append((scene.image, scene.faces))
    return frames


def search_for(cfg: Config, detector_name: str, **detection: Any) -> FrameDetector:
    """The camera-frame search `cfg` would run with another detector and detection settings."""
    variant = dataclasses.replace(
        cfg,
        models=dataclasses.replace(cfg.models, detector=detector_name),
        detection=dataclasses.replace(cfg.detection, **detection),
    )
    cache = Path(cfg.models.cache_dir) if cfg.models.cache_dir else None
    path, spec = find_model(detector_name, cache)
    rec = variant.recognition
    settings = DetectorSettings(
        min_score=rec.detector_min_score or default_min_score(path),
        min_face_px=rec.min_face_px,
        search_face_px=variant.detection.min_face_px,
    )
    detector = load_detector(path, spec, settings, cfg.runtime.num_threads)
    return frame_detector(variant, detector, cache, settings)


def _timed(search: FrameDetector, image: ImageBGR) -> tuple[list[Box], float]:
    start = time.perf_counter()
    boxes = [f.box for f in search.detect(image)]
    return boxes, time.perf_counter() - start


def _score(
    search: FrameDetector,
    faces: list[tuple[ImageBGR, list[Box]]],
    empty: list[ImageBGR],
    empty_small: list[ImageBGR],
) -> dict[str, Any]:
    found = {band_name(b): [0, 0] for b in BANDS}
    times = []
    for image, reference in faces:
        boxes, seconds = _timed(search, image)
        times.append(seconds)
        for ref in reference:
            band = band_name(next(b for b in BANDS if b[0] <= ref.w < b[1]))
            found[band][1] += 1
            found[band][0] += found_by(ref, boxes)
    false_big = sum(len(_timed(search, image)[0]) for image in empty)
    small = [_timed(search, image) for image in empty_small]
    return {
        "found": found,
        "false_per_100": round(100 * false_big / max(1, len(empty)), 1),
        "false_per_100_small": round(100 * sum(len(b) for b, _ in small) / max(1, len(small)), 1),
        "median_ms": round(float(np.median(times)) * 1000, 2),
        "median_ms_small": round(float(np.median([s for _, s in small])) * 1000, 2),
    }


def bench_detection(cfg: Config) -> dict[str, Any]:
    """Every setting of SETTINGS (with the configured ROI, if any) on the same frames."""
    empty = [s.image for s in no_face_scenes()]
    empty_small = [s.image for s in no_face_scenes(small=True)]
    faces = composed_frames(empty[::4])
    h, w = faces[0][0].shape[:2]
    if cfg.camera.roi is not None:
        roi = resolve_roi(cfg.camera.roi, w, h)
        faces = [(image, [b for b in refs if _inside(b, roi)]) for image, refs in faces]
    baseline = search_for(cfg, BASELINE_DETECTOR, tiles="off")
    unit = baseline.detector.multiply_accumulates(*SMALL_FRAME)
    rows, skipped = [], []
    for label, detector_name, overrides in SETTINGS:
        try:
            search = search_for(cfg, detector_name, **overrides)
        except EdgefaceError as exc:  # a model that is not built: say so, bench the others
            skipped.append(f"{label}: {exc}")
            continue
        row: dict[str, Any] = {"setting": label}
        row.update(_score(search, faces, empty, empty_small))
        macs, macs_small = (
            search.multiply_accumulates(w, h),
            search.multiply_accumulates(*SMALL_FRAME),
        )
        row["mmacs"], row["mmacs_small"] = round(macs / 1e6, 1), round(macs_small / 1e6, 1)
        row["ratio_small"] = round(macs_small / unit, 2)
        rows.append(row)
    return {
        "roi": cfg.camera.roi,
        "frames": {"faces": len(faces), "no_face": len(empty), "size": [w, h]},
        "rows": rows,
        "skipped": skipped,
    }


def _inside(box: Box, roi: Rect) -> bool:
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    return roi.x <= cx < roi.x + roi.w and roi.y <= cy < roi.y + roi.h


def format_detection(report: dict[str, Any]) -> list[str]:
    roi = report["roi"] and "[" + ", ".join(f"{v:g}" for v in report["roi"]) + "]"
    frames = report["frames"]
    lines = [
        "",
        f"detection: faces found / pasted faces by face width in px on {frames['faces']} composed"
        f" 1920x1080 scenes; false faces per 100 no-face frames ({frames['no_face']} scenes,"
        " 1920x1080 and 640x480); cost per frame in M multiply-adds (x = ratio to one"
        f" blazeface-full pass at 640x480) and median ms{f'; camera.roi {roi}' if roi else ''}",
    ]
    header = (
        f"{'setting':<33}"
        + "".join(f"{band_name(b):>8}" for b in BANDS)
        + f" {'false':>6} {'f@480':>6} {'MMAC':>7} {'ms':>7} {'MMAC@480':>9} {'x':>5} {'ms@480':>7}"
    )
    lines.append(header)
    for row in report["rows"]:
        cells = "".join(f"{f'{a}/{n}' if n else '-':>8}" for a, n in row["found"].values())
        lines.append(
            f"{row['setting']:<33}{cells} {row['false_per_100']:>6.1f}"
            f" {row['false_per_100_small']:>6.1f} {row['mmacs']:>7.1f} {row['median_ms']:>7.1f}"
            f" {row['mmacs_small']:>9.1f} {row['ratio_small']:>5.2f} {row['median_ms_small']:>7.1f}"
        )
    lines += [f"not benched: {s}" for s in report["skipped"]]
    return lines
