"""Unknown visitors with the real models: real face crops are kept, grouped per visitor, and a
named group becomes an enrolled person the gallery matches.

Visits are frames composed like a camera would see them (a face at some place and size on a
background), analysed exactly as the daemon's engine does (detect, align, embed, vote weight).
"""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import GalleryConfig
from edgeface.errors import EdgefaceError
from edgeface.gallery.matcher import Thresholds
from edgeface.gallery.store import Gallery
from edgeface.images import load_image
from edgeface.pipeline.tracker import vote_weight
from edgeface.samples import enrollment_photos, head_patch, packaged_faces
from edgeface.unknowns import UnknownStore, enrollment_crop

THRESHOLD = 0.6  # recognition.match_threshold's default


def scene(patch: np.ndarray, x: int, y: int, side: int) -> np.ndarray:
    """A 640x360 frame: a textured wall with the face patch pasted at (x, y), `side` px wide."""
    rng = np.random.default_rng(x * 1000 + y)
    frame = np.clip(
        np.linspace(70, 150, 640, dtype=np.float32)[None, :, None]
        + rng.normal(0, 4, (360, 640, 1)),
        0,
        255,
    ).astype(np.uint8)
    frame = np.repeat(frame, 3, axis=2)
    frame[y : y + side, x : x + side] = cv2.resize(patch, (side, side))
    return frame


class Visits:
    """Feeds the store like the daemon: one track per visit, its best face by vote weight."""

    def __init__(self, analyzer: FaceAnalyzer, store: UnknownStore) -> None:
        self.analyzer, self.store = analyzer, store
        self.track = 0
        self.ts = 1_700_000_000.0

    def visit(self, *frames: np.ndarray) -> None:
        self.track += 1
        for frame in frames:
            self.ts += 0.2
            (face,) = self.analyzer.analyze(frame)
            weight = vote_weight(face.face, face.aligned.sharpness)
            crop = enrollment_crop(frame, face.face.box)
            self.store.add(self.track, face.embedding, crop, weight, self.ts)
        self.ts += 600


def cluster_sizes(store: UnknownStore) -> list[int]:
    return [len(c.crops) for c in store.clusters()]


@pytest.fixture(scope="module")
def faces():
    try:
        return packaged_faces()
    except EdgefaceError as exc:
        pytest.skip(str(exc))


def test_pip_faces_same_stranger_twice_is_one_cluster_and_can_be_named(analyzer, faces, tmp_path):
    store = UnknownStore(tmp_path / "state", 7 * 86400, THRESHOLD, clock=time.time)
    visits = Visits(analyzer, store)
    s0, s1 = faces.strangers[0], faces.strangers[1]
    box = analyzer.detect(faces.person_photo)[0].box
    her = head_patch(faces.person_photo, (box.x, box.y, box.w, box.h), 1.9, 170)
    # stranger 0 comes twice (other place, size, mirrored), stranger 1 and the astronaut once
    visits.visit(scene(s0, 50, 60, 150), scene(s0, 90, 70, 160))
    visits.visit(scene(s1, 300, 100, 140))
    visits.visit(scene(cv2.flip(s0, 1), 380, 150, 120))
    visits.visit(scene(her, 100, 80, 170), scene(her, 120, 90, 150))
    assert len(store.crops()) == 4, "one crop per track: the best of its frames"
    assert cluster_sizes(store) == [2, 1, 1]
    first = store.clusters()[0]
    assert {c.track_id for c in first.crops} == {1, 3}
    for path in store.root.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700

    # naming the cluster enrolls the visitor: the gallery finds a usable face in every crop
    gallery_dir = tmp_path / "gallery"
    gallery_dir.mkdir()
    moved = store.name_cluster(first.id, "Visitor One", gallery_dir)
    assert len(moved) == 2
    gallery = Gallery(
        gallery_dir,
        GalleryConfig(path=str(gallery_dir), settle_seconds=0),
        Thresholds(match=THRESHOLD, unknown=0.45),
        analyzer,
    )
    update = gallery.refresh(time.time())
    assert update.report.problems == ()
    assert [(p.name, p.usable) for p in update.report.people] == [("Visitor One", 2)]
    probe = analyzer.analyze(scene(s0, 250, 40, 180))[0].embedding
    assert update.matcher.match(probe).person == "Visitor One"
    other = analyzer.analyze(scene(s1, 250, 40, 180))[0].embedding
    assert update.matcher.match(other).person is None
    assert cluster_sizes(store) == [1, 1]  # the others are still waiting for a name

    # and they expire
    assert store.expire(now=time.time() + 8 * 86400) == 2
    assert store.clusters() == []


@pytest.mark.shared_data
def test_shared_photos_two_visitors_with_different_photos(analyzer, shared_faces, tmp_path):
    """Different photos of the same real people (not mirrored copies) group together."""
    store = UnknownStore(tmp_path / "state", 86400, THRESHOLD)
    visits = Visits(analyzer, store)
    train = shared_faces / "knn_examples" / "train"

    def framed(path: Path) -> np.ndarray:
        image = load_image(path)
        b = analyzer.detect(image)[0].box
        return scene(head_patch(image, (b.x, b.y, b.w, b.h), 1.9, 160), 200, 100, 160)

    for photo in (
        train / "obama" / "obama.jpg",
        train / "biden" / "biden.jpg",
        train / "obama" / "obama2.jpg",
        shared_faces / "knn_examples" / "test" / "obama1.jpg",
        train / "biden" / "biden2.jpg",
    ):
        visits.visit(framed(photo))
    clusters = store.clusters()
    assert [sorted(c.track_id for c in cl.crops) for cl in clusters] == [[1, 3, 4], [2, 5]]


def edgeface_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeface", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_cli_naming_a_stranger_after_an_enrolled_person_needs_merge(analyzer, faces, tmp_path):
    """`unknown name <group> <existing person>` says how well the group matches that person and
    moves nothing unless it matches or --merge confirms it."""
    gallery, state = tmp_path / "gallery", tmp_path / "state"
    (gallery / "Eileen").mkdir(parents=True)
    for n, image in enumerate(enrollment_photos(faces.person_photo)):
        cv2.imwrite(str(gallery / "Eileen" / f"{n}.jpg"), image)
    enrolled = sorted(p.name for p in (gallery / "Eileen").iterdir())
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {state}\ngallery: {{path: {gallery}}}\n")
    store = UnknownStore(state, 7 * 86400, THRESHOLD)
    visits = Visits(analyzer, store)
    s0 = faces.strangers[0]
    visits.visit(scene(s0, 50, 60, 150), scene(s0, 90, 70, 160))
    visits.visit(scene(cv2.flip(s0, 1), 380, 150, 120))
    box = analyzer.detect(faces.person_photo)[0].box
    her = head_patch(faces.person_photo, (box.x, box.y, box.w, box.h), 1.9, 170)
    visits.visit(scene(her, 100, 80, 170))
    stranger, eileen = store.clusters()  # largest first
    assert len(stranger.crops) == 2 and len(eileen.crops) == 1
    threshold = ("--threshold", str(THRESHOLD))

    refused = edgeface_cli("unknown", "name", stranger.id, "Eileen", "--config", config, *threshold)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.splitlines()
    assert "2 crop(s) score" in line and "against Eileen's photos" in line, line
    assert "--merge" in line and "nothing moved" in line, line
    assert sorted(p.name for p in (gallery / "Eileen").iterdir()) == enrolled
    assert len(store.crops()) == 3

    # Her own crop matches: it joins her folder, and the score is said.
    same = edgeface_cli("unknown", "name", eileen.id, "Eileen", "--config", config, *threshold)
    assert same.returncode == 0, same.stderr
    assert "the group matches Eileen" in same.stdout, same.stdout
    assert len(list((gallery / "Eileen").iterdir())) == len(enrolled) + 1

    # --merge adds the stranger anyway, and says what it is doing.
    forced = edgeface_cli(
        "unknown", "name", stranger.id, "Eileen", "--merge", "--config", config, *threshold
    )
    assert forced.returncode == 0, forced.stderr
    assert "is a stranger to Eileen" in forced.stdout or "does not match" in forced.stdout
    assert len(list((gallery / "Eileen").iterdir())) == len(enrolled) + 3
    assert store.crops() == []


def test_cli_a_name_too_long_for_a_folder_is_one_line(tmp_path):
    """A 300-byte name (the file system allows 255) is refused by `unknown name` in one line."""
    store = UnknownStore(tmp_path / "state", 86400, THRESHOLD)
    embedding = np.ones(128, np.float32) / np.sqrt(128)
    store.add(1, embedding, np.full((120, 120, 3), 90, np.uint8), 1.0, time.time())
    (cluster,) = store.clusters()
    (tmp_path / "gallery").mkdir()
    result = edgeface_cli(
        "unknown",
        "name",
        cluster.id,
        "é" * 150,
        "--state-dir",
        tmp_path / "state",
        "--gallery",
        tmp_path / "gallery",
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert "300 bytes long, at most 255" in line, line
    assert list((tmp_path / "gallery").iterdir()) == []
    assert len(store.crops()) == 1
