"""Real surveillance-camera frames through the daemon: people enrolled from studio photos.

`../shared/data/faces3` (research-only: read in place, composed into a video under tmp, never
copied into the repository) holds, for 25 people, a studio photo, a frontal mugshot and five
352x288 frames from surveillance cameras. Ten people are enrolled from their studio photo and
mugshot; the video shows their camera frames on the left, each beside a camera frame of one of
the other fifteen (strangers) on the right. The daemon at the shipped defaults must name no
stranger and no enrolled person as someone else, and name some of the camera frames.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import daemon_support as support
import pytest

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config
from edgeface.images import load_image
from edgeface.samples import Appearance, compose_video
from edgeface.yunet import SMALLEST_INPUT_FACE

FACES3 = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces3"
ENROLLED_PEOPLE = 10
SLOTS = 16  # enrolled camera frames in the video, each beside a stranger's
SLOT_SECONDS = 4.0  # 2.4 s on screen, then a gap longer than tracking.lost_after
SHOWN_SECONDS = 2.4
MIN_FACE_PX = 48  # frames whose face is at least this big (the smallest band is mostly missed)
# A camera frame enrolled from studio photos is a hard case (another camera, often glasses,
# side views): the shipped defaults name about a third of the frames whose face they find in the
# still-image protocol (README "Accuracy"), 5 of these 16 in the daemon on an x86 machine. At
# least 3 must be named, and never a wrong person: with looser thresholds (0.3) strangers are
# named here; with FaceNet's threshold (0.65) for SFace only 2 frames are.
MIN_NAMED = 3
LEFT_X, RIGHT_X, TOP = 8, 372, 20

needs_faces3 = pytest.mark.skipif(
    not (FACES3 / "labels.csv").is_file(),
    reason=f"{FACES3} is absent (the shared research-only face set beside the checkout)",
)


def _frames_with_a_face(
    analyzer: FaceAnalyzer, photos: list[Path]
) -> list[tuple[Path, tuple[float, float]]]:
    """Camera frames whose largest face is big enough, with that face's centre."""
    frames = []
    for photo in sorted(p for p in photos if p.name.startswith("cctv_")):
        faces = analyzer.detect(load_image(photo))
        if faces and min(faces[0].box.w, faces[0].box.h) >= MIN_FACE_PX:
            box = faces[0].box
            frames.append((photo, (box.x + box.w / 2, box.y + box.h / 2)))
    return frames


@needs_faces3
def test_small_camera_frames_are_searched_at_their_own_size():
    """A 352x288 frame shrunk to half (where a 40 px face spans 20 px of input) loses faces YuNet
    finds at the frame's own size: the defaults must find at least 90 % of those."""
    analyzer = FaceAnalyzer.from_config(Config())
    own_size = analyzer.detector.with_settings(
        dataclasses.replace(analyzer.detector.settings, search_face_px=round(SMALLEST_INPUT_FACE))
    )
    frames = [load_image(p) for p in sorted(FACES3.glob("*/cctv_*"))]
    assert frames and all(f.shape[:2] == (288, 352) for f in frames)
    with_a_face = [f for f in frames if own_size.detect(f)]
    found = sum(bool(analyzer.detect_frame(f)) for f in with_a_face)
    assert len(with_a_face) >= len(frames) / 2
    assert found >= 0.9 * len(with_a_face), f"{found} of {len(with_a_face)}"


@needs_faces3
def test_camera_frames_enrolled_from_the_same_cameras_name_nobody_wrongly(tmp_path):
    """What the unknown-visitors path builds: people enrolled from camera crops, probed with
    other frames of the same cameras (`edgeface eval`, leave one out). Frames of two people from
    one camera score up to 0.55 against each other, above the match threshold; a template that
    already resembles another enrolled person that much must be beaten by the excess."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "edgeface", "eval"),
            *("--labels", str(FACES3 / "labels.csv"), "--root", str(FACES3)),
            *("--enrol", "*/cctv_*", "--probe", "*/cctv_*", "--json", str(report)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (split,) = (model["split"] for model in json.loads(report.read_text())["models"].values())
    assert split["misidentified"] == 0, split["errors"]
    assert split["correct_accept_rate"] > 0  # some frames are still named


def _centre(event: dict[str, Any]) -> tuple[float, float]:
    x, y, w, h = event["box"]
    return x + w / 2, y + h / 2


def _slots(decisions: list[dict[str, Any]], centres: list[tuple[float, float]]) -> list[int]:
    """The visit each decision belongs to.

    Event times are the daemon's start plus the video position, so their differences give the
    visits relative to each other exactly (one every SLOT_SECONDS); the offset of the first is
    the one that puts every decision's box where its visit's face is.
    """
    first = decisions[0]["ts"]
    relative = [round((e["ts"] - first) / SLOT_SECONDS) for e in decisions]

    def distance(offset: int) -> float:
        return sum(
            math.dist(_centre(e), centres[r + offset])
            for e, r in zip(decisions, relative, strict=True)
        )

    offset = min(range(len(centres) - relative[-1]), key=distance)
    return [r + offset for r in relative]


@needs_faces3
def test_camera_frames_of_people_enrolled_from_studio_photos(tmp_path, mosquitto, recorder_factory):
    analyzer = FaceAnalyzer.from_config(Config())
    people = support.photos_by_identity(FACES3)
    names = list(people)
    enrolled, others = names[:ENROLLED_PEOPLE], names[ENROLLED_PEOPLE:]
    gallery = tmp_path / "gallery"
    for person in enrolled:
        (gallery / person).mkdir(parents=True)
        for photo in people[person]:
            if not photo.name.startswith("cctv_"):
                shutil.copy(photo, gallery / person / photo.name)
    visits = [(p, f) for p in enrolled for f in _frames_with_a_face(analyzer, people[p])][:SLOTS]
    strangers = [f for p in others for f, _ in _frames_with_a_face(analyzer, people[p])]
    assert len(visits) == SLOTS and len(strangers) >= SLOTS

    appearances, truth, centres = [], [], []
    for slot, ((person, (frame, centre)), stranger) in enumerate(
        zip(visits, strangers, strict=False)
    ):
        start = 0.3 + slot * SLOT_SECONDS
        for x, photo in ((LEFT_X, frame), (RIGHT_X, stranger)):
            appearances.append(
                Appearance(load_image(photo), start, start + SHOWN_SECONDS, (x, TOP), (x + 6, TOP))
            )
        truth.append(person)
        centres.append((LEFT_X + 3 + centre[0], TOP + centre[1]))
    video = tmp_path / "camera-frames.avi"
    compose_video(video, appearances, duration=SLOTS * SLOT_SECONDS + 0.5, size=(736, 330))

    decisions = support.decisions_over_video(
        tmp_path, video, gallery, mosquitto, recorder_factory, timeout=600
    )
    left = [e for e in decisions if e["box"][0] + e["box"][2] / 2 < RIGHT_X]
    right = [e for e in decisions if e["box"][0] + e["box"][2] / 2 >= RIGHT_X]
    named_strangers = [e["person"] for e in right if e["person"] is not None]
    assert not named_strangers, f"strangers named as: {named_strangers}"
    assert left, "no decision about any enrolled person's camera frame"
    published = {slot: e["person"] for slot, e in zip(_slots(left, centres), left, strict=True)}
    wrong = [
        (got, truth[slot]) for slot, got in published.items() if got not in (None, truth[slot])
    ]
    assert not wrong, f"camera frames named as someone else (named, truth): {wrong}"
    named = sum(got == truth[slot] for slot, got in published.items())
    assert named >= MIN_NAMED, f"{named} of {SLOTS} named: {published} vs {truth}"
