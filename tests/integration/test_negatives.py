""" "Not this person": photos in GALLERY/<person>/not/ stop look-alikes being published as <person>.

Both cases are real false matches of the CASIA FaceNet (`facenet-dynamic`, the default until the
MS-Celeb model replaced it) at its former threshold of 0.6 with no runner-up margin, found by
comparing the photos available here, not staged. The shipped default model does not make these
mistakes, so the tests pin that model and those settings: what they check is the `not/`
mechanism, which works with any model: with the shared photos, Lin-Manuel Miranda's photo is recognised as
Alex Lacamoire (similarity 0.62); with the faces scikit-image ships (LFW crops, no identity
labels), LFW face 58 is recognised as the person enrolled with LFW face 2. The fix a user would
make is to drop the look-alike's photo into `not/`; the probe is a different view of the
look-alike (mirrored, rescaled, placed in a camera-like frame), and the real person must still
be recognised afterwards.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import cv2
import daemon_support as support
import numpy as np
import pytest
import yaml

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import GalleryConfig, parse_config, with_embedder
from edgeface.gallery.matcher import Thresholds
from edgeface.gallery.store import Gallery
from edgeface.images import load_image
from edgeface.samples import Appearance, compose_video, head_patch

MODEL = "facenet-dynamic"
SETTINGS = {"match_threshold": 0.6, "unknown_threshold": 0.45, "ambiguity_margin": 0.0}
THRESHOLDS = Thresholds(match=0.6, unknown=0.45, margin=0.0)


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    # The false matches were found with BlazeFace crops; another detector frames faces otherwise.
    blazeface = parse_config({"models": {"detector": "blazeface-full"}})
    return FaceAnalyzer.from_config(with_embedder(blazeface, MODEL))


def gallery_of(root: Path, analyzer: FaceAnalyzer, min_sharpness: float = 15.0) -> Gallery:
    settings = GalleryConfig(path=str(root), settle_seconds=0, min_sharpness=min_sharpness)
    return Gallery(root, settings, THRESHOLDS, analyzer)


def framed(image: np.ndarray, analyzer: FaceAnalyzer, side: int = 150) -> np.ndarray:
    """The face mirrored and rescaled into a 640x360 frame: another view than the photo."""
    b = analyzer.detect(image)[0].box
    patch = cv2.flip(head_patch(image, (b.x, b.y, b.w, b.h), 1.9, side), 1)
    frame = np.full((360, 640, 3), 110, np.uint8)
    frame[100 : 100 + side, 240 : 240 + side] = patch
    return frame


def probe(analyzer: FaceAnalyzer, frame: np.ndarray) -> np.ndarray:
    return analyzer.analyze(frame)[0].embedding


def test_pip_faces_look_alike_in_not_folder_is_not_published(analyzer, tmp_path):
    skdata = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) not installed")
    lfw = (skdata.lfw_subset()[:100] * 255).astype(np.uint8)

    def photo(index: int) -> np.ndarray:
        grey = cv2.resize(lfw[index], (140, 140), interpolation=cv2.INTER_CUBIC)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)

    root = tmp_path / "gallery"
    (root / "Pat" / "not").mkdir(parents=True)
    cv2.imwrite(str(root / "Pat" / "pat.png"), photo(2))
    # 25x25 crops scaled up are soft: the gallery's sharpness check would refuse them.
    gallery = gallery_of(root, analyzer, min_sharpness=0)

    def view(index: int) -> np.ndarray:
        frame = np.full((360, 640, 3), 110, np.uint8)
        frame[100:210, 200:310] = cv2.resize(cv2.flip(photo(index), 1), (110, 110))
        return probe(analyzer, frame)

    look_alike, pat = view(58), view(2)
    before = gallery.refresh(time.time()).matcher
    assert before.match(look_alike).person == "Pat", "the false match this test is about"

    cv2.imwrite(str(root / "Pat" / "not" / "look-alike.png"), photo(58))
    update = gallery.refresh(time.time())
    (person,) = update.report.people
    assert (person.usable, person.usable_negatives) == (1, 1)
    match = update.matcher.match(look_alike)
    assert match.person is None and match.nearest == "Pat" and match.band == "uncertain"
    assert update.matcher.match(pat).person == "Pat"


@pytest.mark.shared_data
def test_shared_photos_look_alike_is_unknown_in_the_daemon_too(
    analyzer, shared_faces, tmp_path, mosquitto, recorder_factory
):
    root = tmp_path / "gallery"
    shutil.copytree(shared_faces / "knn_examples" / "train", root)
    lin_photo = shared_faces / "face_recognition_extra" / "lin-manuel-miranda.png"
    lin = probe(analyzer, framed(load_image(lin_photo), analyzer))
    alex_image = load_image(shared_faces / "knn_examples" / "test" / "alex_lacamoire1.jpg")
    alex = probe(analyzer, framed(alex_image, analyzer))
    gallery = gallery_of(root, analyzer)
    assert gallery.refresh(time.time()).matcher.match(lin).person == "alex_lacamoire"

    (root / "alex_lacamoire" / "not").mkdir()
    shutil.copy(lin_photo, root / "alex_lacamoire" / "not" / "lin-manuel-miranda.png")
    matcher = gallery.refresh(time.time()).matcher
    assert matcher.match(lin).person is None
    assert matcher.match(alex).person == "alex_lacamoire"

    # The daemon on a video: Lin-Manuel walks by, then Alex.
    def patch(image: np.ndarray) -> np.ndarray:
        b = analyzer.detect(image)[0].box
        return head_patch(image, (b.x, b.y, b.w, b.h), 1.9, 160)

    video = tmp_path / "lookalike.avi"
    compose_video(
        video,
        [
            Appearance(patch(load_image(lin_photo)), 0.3, 2.5, (60, 90), (220, 100)),
            Appearance(patch(alex_image), 4.0, 6.2, (380, 100), (260, 90)),
        ],
        duration=7.0,
    )
    config = tmp_path / "edgeface.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device": {"id": "neg1"},
                "camera": {"source": str(video), "name": "door", "fps_cap": 15, "realtime": False},
                "gallery": {"path": str(root), "settle_seconds": 0},
                "state_dir": str(tmp_path / "daemon-state"),
                "mqtt": {"port": mosquitto.port},
                "models": {"embedder": MODEL},
                "recognition": SETTINGS,
            }
        )
    )
    recorder = recorder_factory(mosquitto, "edgeface/neg1/events")
    result = support.run_daemon(config)
    assert result.returncode == 0, result.stderr[-2000:]
    recorder.wait_for_count("edgeface/neg1/events", 4)
    events = [json.loads(p) for p in recorder.payloads("edgeface/neg1/events")]
    assert [(e["type"], e["person"]) for e in events] == [
        ("unknown", None),
        ("left", None),
        ("recognized", "alex_lacamoire"),
        ("left", "alex_lacamoire"),
    ]
