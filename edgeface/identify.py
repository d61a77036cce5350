"""Recognising faces in stored images, and explaining why a face was (not) recognised.

Owns: the per-image result dictionaries behind `edgeface identify`, their text lines, and the
per-stage explanation behind `--explain`. Never: builds the gallery (it is handed a Matcher).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgeface.align import head_turn
from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config
from edgeface.gallery.matcher import Matcher, Thresholds
from edgeface.images import load_image
from edgeface.types import Match


def identify_image(path: Path, analyzer: FaceAnalyzer, matcher: Matcher) -> dict[str, Any]:
    image = load_image(path)
    faces = []
    for analyzed in analyzer.analyze(image):
        match = matcher.match(analyzed.embedding, head_turn(analyzed.face))
        faces.append(
            {
                "box": analyzed.face.box.as_list(),
                "detector_score": round(analyzed.face.score, 3),
                "person": match.person,
                "band": match.band,
                "score": round(match.score, 4),
                "nearest": match.nearest,
                "runner_up": dataclasses.asdict(match.runner_up) if match.runner_up else None,
            }
        )
    return {"image": str(path), "faces": faces}


def format_result(result: dict[str, Any], enrolled: bool) -> list[str]:
    """Text lines for one `identify_image` result; `enrolled` is false for an empty gallery."""
    image = result["image"]
    if not result["faces"]:
        return [f"{image}: no face found"]
    if not enrolled:
        return [
            f"{image}: a face, not compared: no one is enrolled in the gallery; box {f['box']}"
            for f in result["faces"]
        ]
    lines = []
    for f in result["faces"]:
        who = f["person"] or f"unknown (nearest {f['nearest']})"
        lines.append(f"{image}: {who} similarity {f['score']:.3f} box {f['box']}")
    return lines


def explain_image(path: Path, analyzer: FaceAnalyzer, matcher: Matcher, cfg: Config) -> str:
    """A per-stage account: decode, detection (incl. faces dropped as too small), quality, match."""
    lines = [f"{path}:"]
    image = load_image(path)
    lines.append(f"  decode: {image.shape[1]}x{image.shape[0]} pixels")
    settings = analyzer.detector.settings
    unfiltered = analyzer.detector.with_settings(
        dataclasses.replace(settings, min_face_px=0, min_score=min(settings.min_score, 0.3))
    )
    candidates = unfiltered.detect(image)
    if not candidates:
        lines.append("  detect: no face found (not even at score 0.3)")
        return "\n".join(lines)
    thresholds = matcher.thresholds
    for n, face in enumerate(candidates, 1):
        side = min(face.box.w, face.box.h)
        head = f"  face {n}: box {face.box.as_list()}, detector score {face.score:.2f}"
        if face.score < settings.min_score:
            lines.append(f"{head}: below the detector threshold {settings.min_score}")
            continue
        if side < settings.min_face_px:
            lines.append(
                f"{head}: too small ({side:.0f}px < recognition.min_face_px {settings.min_face_px})"
            )
            continue
        analyzed = analyzer.embed_face(image, face)
        sharp = analyzed.aligned.sharpness
        blur = (
            " (blurred: below gallery.min_sharpness)" if sharp < cfg.gallery.min_sharpness else ""
        )
        lines.append(f"{head}, sharpness {sharp:.0f}{blur}")
        if not matcher.person_names:
            lines.append("    match: the gallery is empty")
            continue
        turn = head_turn(analyzed.face)
        m = matcher.match(analyzed.embedding, turn)
        verdict = {
            "match": f"recognised as {m.person}",
            "uncertain": f"uncertain: nearest {m.nearest} {_why_uncertain(m, thresholds, turn)}",
            "unknown": f"unknown: nearest {m.nearest} is below recognition.unknown_threshold",
        }[m.band]
        runner = f", runner-up {m.runner_up.person} {m.runner_up.score:.3f}" if m.runner_up else ""
        lines.append(
            f"    match: similarity {m.score:.3f} to {m.nearest}{runner};"
            f" thresholds match {thresholds.match} / unknown {thresholds.unknown}"
            f" / margin {thresholds.margin} -> {verdict}"
        )
    return "\n".join(lines)


def _why_uncertain(match: Match, thresholds: Thresholds, turn: float | None) -> str:
    if match.score < thresholds.match:
        return "is between the thresholds"
    if match.runner_up is not None and match.margin < thresholds.margin:
        return (
            f"is only {match.margin:.3f} ahead of {match.runner_up.person}"
            " (recognition.ambiguity_margin): a look-alike"
        )
    if match.score - match.crowding < thresholds.match:
        return (
            f"but that photo of {match.nearest} is itself close to another enrolled person"
            f" (a match through it needs {thresholds.match + match.crowding:.3f})"
        )
    if turn is not None and turn > thresholds.max_turn:
        return f"but the head is turned ({turn:.2f} > recognition.max_turn {thresholds.max_turn:g})"
    return f"is no closer than one of the photos in {match.nearest}/not/"
