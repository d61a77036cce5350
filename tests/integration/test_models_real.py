"""The real TFLite detector and embedder on real faces (pip-shipped photos, and the shared set)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import Config
from edgeface.errors import EdgefaceError
from edgeface.images import load_image

NOT_A_PERSON = {"group", "unknown", "none"}


def test_detector_finds_the_astronaut_with_keypoints_inside_the_box(analyzer, astronaut_bgr):
    faces = analyzer.detect(astronaut_bgr)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.7
    assert 60 < face.box.w < 250
    for x, y in face.keypoints[:4]:  # eyes, nose, mouth lie inside the face box
        assert face.box.x <= x <= face.box.x + face.box.w
        assert face.box.y <= y <= face.box.y + face.box.h


def test_tight_crop_found_by_padded_retry(analyzer, astronaut_bgr):
    face = analyzer.detect(astronaut_bgr)[0]
    b = face.box
    tight = astronaut_bgr[int(b.y) : int(b.y + b.h), int(b.x) : int(b.x + b.w)].copy()
    assert analyzer.detect(tight), "a face filling the whole image must still be found"


def test_no_face_in_a_plain_image(analyzer):
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert analyzer.detect(noise) == []
    assert analyzer.detect(np.full((300, 300, 3), 128, np.uint8)) == []


def test_grayscale_and_rgba_inputs_are_handled(analyzer, astronaut_bgr, tmp_path):
    import cv2

    gray_path, rgba_path = tmp_path / "gray.png", tmp_path / "rgba.png"
    cv2.imwrite(str(gray_path), cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(rgba_path), cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA))
    for path in (gray_path, rgba_path):
        faces = analyzer.analyze(load_image(path))
        assert len(faces) == 1
        assert abs(np.linalg.norm(faces[0].embedding) - 1) < 1e-4


def test_same_person_scores_higher_than_different_people(analyzer, astronaut_bgr, lfw_faces):
    reference = analyzer.analyze(astronaut_bgr)[0].embedding
    mirrored = analyzer.analyze(np.ascontiguousarray(astronaut_bgr[:, ::-1]))[0].embedding
    scaled = analyzer.analyze(astronaut_bgr[::2, ::2].copy())[0].embedding
    others = []
    for face in lfw_faces[:40]:
        found = analyzer.analyze(face)
        if found:
            others.append(float(found[0].embedding @ reference))
    assert len(others) >= 20, "LFW crops should mostly be detected"
    same = min(float(mirrored @ reference), float(scaled @ reference))
    # Well above the default model's match threshold (scores mean nothing across models).
    assert same > Config().recognition.match_threshold + 0.1
    assert same > max(others) + 0.1


def test_bad_inputs_get_one_line_errors(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(EdgefaceError, match=r"nope\.jpg: no such file"):
        load_image(missing)
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    with pytest.raises(EdgefaceError, match=r"notes\.jpg: not a readable image"):
        load_image(text)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(EdgefaceError, match=r"empty\.png: empty file"):
        load_image(empty)


def _single_person_photos(root: Path) -> list[tuple[Path, str]]:
    with (root / "labels.csv").open() as fh:
        return [
            (root / row["path"], row["identity"])
            for row in csv.DictReader(fh)
            if row["identity"] not in NOT_A_PERSON
        ]


def test_no_face_missed_in_shared_single_face_photos(analyzer: FaceAnalyzer, shared_faces):
    missed = [
        str(path.relative_to(shared_faces))
        for path, _ in _single_person_photos(shared_faces)
        if not analyzer.detect(load_image(path))
    ]
    assert missed == []


def test_shared_identities_rank_first(analyzer: FaceAnalyzer, shared_faces):
    """Enrol knn_examples/train, then every test photo names the right people."""
    from edgeface.gallery.matcher import Matcher, Thresholds

    train = sorted((shared_faces / "knn_examples" / "train").glob("*/*"))
    embeddings = [analyzer.analyze(load_image(p))[0].embedding for p in train]
    matcher = Matcher(np.array(embeddings), [p.parent.name for p in train], Thresholds(0.6, 0.45))
    expected = {
        "alex_lacamoire1.jpg": {"alex_lacamoire"},
        "johnsnow_test1.jpg": {"kit_harington"},
        "obama1.jpg": {"obama"},
        "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
        "obama_and_biden.jpg": {"obama", "biden"},
    }
    for name, people in expected.items():
        found = {
            matcher.match(f.embedding).person
            for f in analyzer.analyze(load_image(shared_faces / "knn_examples" / "test" / name))
        }
        assert people <= found, f"{name}: expected {people}, got {found}"


def test_exif_orientation_is_applied_before_detection(analyzer, astronaut_bgr, tmp_path):
    """A phone photo stored sideways with EXIF orientation 6 is read upright."""
    image_module = pytest.importorskip(
        "PIL.Image", reason="Pillow (with scikit-image) not installed"
    )
    import cv2

    # Orientation 6 means "rotate 90 degrees clockwise to display": store it counter-clockwise.
    upright = np.ascontiguousarray(astronaut_bgr[:, :400])  # not square: the shape must turn too
    stored = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)
    photo = image_module.fromarray(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB))
    exif = image_module.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    photo.save(path, exif=exif.tobytes(), quality=95)
    loaded = load_image(path)
    assert loaded.shape[:2] == upright.shape[:2], "rotated back to the upright shape"
    face = analyzer.detect(loaded)[0]
    (x0, y0), (x1, y1) = face.keypoints[0], face.keypoints[1]
    assert abs(y1 - y0) < abs(x1 - x0) / 3, "eyes level: the photo was turned upright"
