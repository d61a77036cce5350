"""The unknown-visitor store with synthetic embeddings: files, best crop, expiry, clusters, naming."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from edgeface.errors import EdgefaceError
from edgeface.gallery.matcher import Thresholds
from edgeface.types import Box
from edgeface.unknowns import (
    MergeCheck,
    UnknownStore,
    cmd_unknown_list,
    cmd_unknown_name,
    enrollment_crop,
    format_clusters,
)


def unit(seed: int, near: np.ndarray | None = None, noise: float = 0.0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    if near is not None:
        v = near + noise * v / np.linalg.norm(v)
    return (v / np.linalg.norm(v)).astype(np.float32)


def crop(value: int) -> np.ndarray:
    return np.full((60, 60, 3), value, np.uint8)


@pytest.fixture
def store(tmp_path: Path) -> UnknownStore:
    return UnknownStore(tmp_path / "state", 3600, 0.6, clock=lambda: 1000.0)


def test_files_are_private_and_the_best_crop_is_kept(store: UnknownStore) -> None:
    e = unit(1)
    assert store.add(7, e, crop(10), weight=0.3, ts=100.0)
    assert not store.add(7, e, crop(20), weight=0.2, ts=101.0)  # worse: ignored
    assert store.add(7, e, crop(30), weight=0.9, ts=102.0)  # better: replaces
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    files = sorted(p.name for p in store.root.iterdir())
    assert len(files) == 2 and all(
        stat.S_IMODE((store.root / f).stat().st_mode) == 0o600 for f in files
    )
    (kept,) = store.crops()
    assert (kept.weight, kept.first_seen, kept.last_seen) == (0.9, 100.0, 102.0)
    import cv2

    assert abs(int(cv2.imread(str(kept.path))[30, 30, 0]) - 30) <= 2


def test_expiry_by_age_and_count(tmp_path: Path) -> None:
    store = UnknownStore(tmp_path, retention_seconds=100, cluster_threshold=0.6, max_crops=2)
    for track, ts in enumerate([10.0, 50.0, 60.0, 70.0]):
        store.add(track, unit(track), crop(track), 0.5, ts)
    assert store.expire(now=140.0) == 2  # 10 is too old; then 50 is over the count
    assert [c.last_seen for c in store.crops()] == [60.0, 70.0]
    (store.root / "orphan.jpg").write_bytes(b"x")
    os.utime(store.root / "orphan.jpg", (0, 0))
    store.expire(now=500.0)
    assert list(store.root.iterdir()) == []


def test_clusters_group_one_visitor_each(store: UnknownStore) -> None:
    a, b = unit(1), unit(2)
    store.add(1, a, crop(1), 0.5, 10.0)
    store.add(2, b, crop(2), 0.5, 20.0)
    store.add(3, unit(3, near=a, noise=0.5), crop(3), 0.8, 30.0)
    store.add(4, unit(4, near=a, noise=0.5), crop(4), 0.4, 40.0)
    clusters = store.clusters()
    assert [len(c.crops) for c in clusters] == [3, 1]
    assert [c.track_id for c in clusters[0].crops] == [1, 3, 4]
    assert clusters[0].best.track_id == 3
    assert clusters[0].id == store.clusters()[0].id  # stable between calls
    text = format_clusters(clusters, now=100.0)
    assert clusters[0].id in text and "3 visit(s)" in text


def test_name_cluster_moves_a_whole_folder_in(store: UnknownStore, tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    a = unit(1)
    store.add(1, a, crop(1), 0.5, 10.0)
    store.add(2, unit(2, near=a, noise=0.3), crop(2), 0.5, 20.0)
    store.add(3, unit(9), crop(3), 0.5, 30.0)
    first = store.clusters()[0]
    moved = store.name_cluster(first.id, "Ann Lee", gallery)
    assert [p.parent for p in moved] == [gallery / "Ann Lee"] * 2
    assert sorted(p.name for p in gallery.iterdir()) == ["Ann Lee"]  # no staging left
    assert len(store.crops()) == 1  # only the other visitor remains
    # a second cluster named after the same person is added to the existing folder
    other = store.clusters()[0]
    moved = store.name_cluster(other.id, "Ann Lee", gallery)
    assert len(list((gallery / "Ann Lee").iterdir())) == 3 and store.crops() == []
    with pytest.raises(EdgefaceError, match="not found"):
        store.name_cluster(other.id, "Ann Lee", gallery)


def test_name_cluster_refuses_bad_input(store: UnknownStore, tmp_path: Path) -> None:
    store.add(1, unit(1), crop(1), 0.5, 10.0)
    cid = store.clusters()[0].id
    (tmp_path / "g").mkdir()
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(EdgefaceError):
            store.name_cluster(cid, bad, tmp_path / "g")
    with pytest.raises(EdgefaceError, match="no such folder"):
        store.name_cluster(cid, "Ann", tmp_path / "missing")
    assert len(store.crops()) == 1


def test_cli_functions(
    store: UnknownStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.add(1, unit(1), crop(1), 0.5, 10.0)
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    args = argparse.Namespace(config=None, state_dir=str(store.root.parent), gallery=str(gallery))
    assert cmd_unknown_list(args) == 0
    cid = capsys.readouterr().out.split()[0]

    def never(*_: object) -> MergeCheck:
        raise AssertionError("a new person is not compared with anyone")

    named = argparse.Namespace(**vars(args), cluster=cid, name="Bo", merge=False)
    assert cmd_unknown_name(named, never) == 0
    assert "1 photo(s) moved" in capsys.readouterr().out
    assert len(list((gallery / "Bo").iterdir())) == 1


@pytest.mark.parametrize(
    ("scores", "merge", "moved", "said"),
    [
        ((0.8, 0.7), False, True, "the group matches Bo"),
        ((0.5, 0.55), False, False, "does not match Bo"),
        ((0.24, 0.39), False, False, "is a stranger to Bo"),
        ((0.24, 0.39), True, True, "is a stranger to Bo"),
        ((), False, False, "no face found again"),
    ],
)
def test_naming_after_an_existing_person_needs_a_match_or_merge(
    store: UnknownStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    scores: tuple[float, ...],
    merge: bool,
    moved: bool,
    said: str,
) -> None:
    store.add(1, unit(1), crop(1), 0.5, 10.0)
    (tmp_path / "gallery" / "Bo").mkdir(parents=True)
    (cid,) = [c.id for c in store.clusters()]
    args = argparse.Namespace(
        config=None,
        state_dir=str(store.root.parent),
        gallery=str(tmp_path / "gallery"),
        cluster=cid,
        name="Bo",
        merge=merge,
    )
    check = MergeCheck("Bo", scores, Thresholds(match=0.6, unknown=0.45))
    if moved:
        assert cmd_unknown_name(args, lambda *_: check) == 0
        assert said in capsys.readouterr().out
    else:
        with pytest.raises(EdgefaceError, match=said):
            cmd_unknown_name(args, lambda *_: check)
    assert len(list((tmp_path / "gallery" / "Bo").iterdir())) == int(moved)


def test_enrollment_crop_is_square_around_the_face_and_clipped() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    assert enrollment_crop(image, Box(100, 50, 50, 50)).shape == (90, 90, 3)
    assert enrollment_crop(image, Box(0, 0, 50, 50)).shape == (70, 70, 3)
