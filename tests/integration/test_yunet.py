"""YuNet, the default detector: small faces across a whole 1080p frame, no false faces, landmarks.

Real faces (LFW from ../shared/data/faces2, and scikit-image's astronaut so something runs
without ../shared) pasted at 40-120 px into 1920x1080 no-face scenes; precision on the no-face
scenes of `edgeface.noface` (scikit-image photos, textures, posters), where a false face would
be an `unknown` event. Cost is counted in multiply-adds, never timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import daemon_support as support
import numpy as np
import pytest

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config, parse_config
from edgeface.detect import BlazeFaceDetector
from edgeface.detection_bench import found_by
from edgeface.noface import no_face_scenes
from edgeface.regions import Rect
from edgeface.scene import compose_scene
from edgeface.types import Box, ImageBGR
from edgeface.yunet import YuNetDetector

FACES2 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces2"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def defaults() -> FaceAnalyzer:
    """The shipped defaults, as the daemon and `identify` load them."""
    analyzer = FaceAnalyzer.from_config(Config())
    assert isinstance(analyzer.detector, YuNetDetector)
    return analyzer


@pytest.fixture(scope="module")
def blazeface() -> FaceAnalyzer:
    return FaceAnalyzer.from_config(parse_config({"models": {"detector": "blazeface-full"}}))


@pytest.fixture(scope="module")
def scenes() -> list[ImageBGR]:
    pytest.importorskip("skimage.data", reason="scikit-image (dev extra) not installed")
    return [s.image for s in no_face_scenes()]


def _photos(analyzer: FaceAnalyzer, images: list[ImageBGR]) -> list[tuple[ImageBGR, Box]]:
    found = [(image, analyzer.detect(image)) for image in images]
    return [(image, faces[0].box) for image, faces in found if len(faces) == 1]


@pytest.fixture(scope="module", params=["lfw", "astronaut"])
def composed(request, defaults, scenes) -> list[tuple[ImageBGR, list[Box]]]:
    """Three 1920x1080 no-face scenes with 24 faces each at 120 down to 40 px."""
    if request.param == "lfw":
        paths = sorted((FACES2 / "lfw_krasserm").glob("*/*.jpg"))
        if not paths:
            pytest.skip(f"LFW photos not found under {FACES2 / 'lfw_krasserm'}")
        images = [cv2.imread(str(p)) for p in paths]
    else:
        skdata = pytest.importorskip("skimage.data", reason="scikit-image not installed")
        astronaut = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
        images = [astronaut, cv2.flip(astronaut, 1)]
    photos = _photos(defaults, images)
    rng = np.random.default_rng(19)
    widths = [float(w) for w in np.linspace(120, 40, 24)]
    frames = []
    for k, background in enumerate(scenes[2::8]):
        scene = compose_scene(photos[k * 8 :] + photos[: k * 8], background, widths, rng)
        frames.append((scene.image, scene.faces))
    return frames


def _recall(frames: list[tuple[ImageBGR, list[Box]]], found: list[list[Box]]) -> float:
    hits = sum(
        found_by(r, boxes) for (_, refs), boxes in zip(frames, found, strict=True) for r in refs
    )
    return hits / sum(len(refs) for _, refs in frames)


def test_defaults_find_40_to_120px_faces_across_a_1080p_frame_camera_path(defaults, composed):
    assert all(len(refs) >= 20 for _, refs in composed)
    found = [[f.box for f in defaults.detect_frame(image)] for image, _ in composed]
    assert _recall(composed, found) >= 0.9


def test_the_daemon_reports_them_from_a_1080p_camera(
    composed, tmp_path, mosquitto, recorder_factory
):
    """The real daemon on a 1080p video of one composed frame: an `unknown` event per face (the
    gallery is empty), where the face is, and none anywhere else."""
    image, faces = composed[0]
    video = tmp_path / "scene.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (1920, 1080))
    for _ in range(8):
        writer.write(image)
    writer.release()
    (tmp_path / "gallery").mkdir()
    recorder = recorder_factory(mosquitto, f"edgeface/{support.DEVICE}/events")
    config = support.write_config(
        tmp_path, video, tmp_path / "gallery", mosquitto.port, camera={"loop": False}
    )
    result = support.run_daemon(config, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(p) for p in recorder.payloads(f"edgeface/{support.DEVICE}/events")]
    boxes = [Box(*e["box"]) for e in events if e["type"] == "unknown"]
    assert _recall([(image, faces)], [boxes]) >= 0.9
    assert all(any(found_by(f, [b]) for f in faces) for b in boxes), "an event off any face"


def test_identify_finds_them_too(defaults, composed, tmp_path):
    paths = []
    for n, (image, _) in enumerate(composed):
        paths.append(tmp_path / f"scene{n}.png")
        cv2.imwrite(str(paths[-1]), image)
    (tmp_path / "gallery").mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeface",
            "identify",
            "--json",
            *map(str, paths),
            "--gallery",
            str(tmp_path / "gallery"),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    found = [[Box(*f["box"]) for f in r["faces"]] for r in results]
    assert _recall(composed, found) >= 0.9


def test_defaults_find_no_face_in_the_no_face_scenes(defaults, blazeface, scenes):
    small = [cv2.resize(s, (640, 480), interpolation=cv2.INTER_AREA) for s in scenes]
    false = [(n, f.score) for n, s in enumerate(scenes + small) for f in defaults.detect_frame(s)]
    assert false == []
    # What the check is worth: the former default, BlazeFace full-range, finds faces in them.
    assert any(blazeface.detect_frame(s) for s in scenes + small)


def test_the_default_640x480_camera_costs_less_than_twice_blazeface(defaults, blazeface):
    assert isinstance(blazeface.detector, BlazeFaceDetector)
    ours = defaults.frame_detector.multiply_accumulates(640, 480)
    assert ours <= 2 * blazeface.frame_detector.multiply_accumulates(640, 480)
    # A 1080p frame is searched finer, not squeezed: more work, still no tiles.
    assert defaults.frame_detector.plan(1920, 1080)[1] == []
    assert defaults.frame_detector.multiply_accumulates(1920, 1080) > ours


def test_five_landmarks_travel_with_each_face_through_a_roi(astronaut_bgr):
    cfg = parse_config({"camera": {"roi": [600, 300, 800, 600]}})
    analyzer = FaceAnalyzer.from_config(cfg)
    frame = np.full((1080, 1920, 3), 100, np.uint8)
    frame[400:912, 700:1212] = astronaut_bgr
    (face,) = analyzer.detect_frame(frame)
    assert face.landmarks is not None and len(face.landmarks) == 5
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    b = face.box
    # In frame pixels (not ROI pixels), inside the face, in ArcFace order.
    assert all(b.x <= x <= b.x + b.w and b.y <= y <= b.y + b.h for x, y in face.landmarks)
    assert lx < nx < rx and mlx < mrx and max(ly, ry) < ny < min(mly, mry)
    assert b.x > 700 and b.y > 400


def test_portraits_whose_face_fills_a_big_photo_are_found(defaults, astronaut_bgr):
    """`identify` and gallery photos: a 2400 px photo of one face, and the tight 512 px crop."""
    face = astronaut_bgr[30:250, 140:310]
    for side in (512, 2400):
        photo = cv2.resize(face, (side, round(side * 220 / 170)), interpolation=cv2.INTER_CUBIC)
        faces = defaults.detect(photo)
        assert len(faces) == 1, (side, faces)
        assert faces[0].box.w > 0.4 * side


def test_tiles_are_not_used_with_yunet():
    analyzer = FaceAnalyzer.from_config(parse_config({"detection": {"tiles": "on"}}))
    assert analyzer.frame_detector.tile_detector is None
    assert analyzer.frame_detector.plan(1920, 1080) == (Rect(0, 0, 1920, 1080), [])


def test_a_face_gets_the_same_box_in_a_photo_and_in_its_smaller_copies(defaults, astronaut_bgr):
    """Landmarks and box come from a second, closer look: the crop of one face must hardly change
    with the size of the picture it is in (its embedding would). Measured: median deviation 2 %
    of the face with the second look, 5 % without."""
    (big,) = defaults.detect(astronaut_bgr)
    deviations = []
    for scale in np.linspace(0.4, 0.95, 12):
        (small,) = defaults.detect(cv2.resize(astronaut_bgr, None, fx=scale, fy=scale))
        b = Box(small.box.x / scale, small.box.y / scale, small.box.w / scale, small.box.h / scale)
        deviations.append(
            max(
                abs(b.w / big.box.w - 1),
                abs(b.x - big.box.x) / big.box.w,
                abs(b.y - big.box.y) / big.box.w,
            )
        )
    assert float(np.median(deviations)) < 0.035, deviations
