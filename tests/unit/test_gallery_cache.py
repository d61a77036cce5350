"""Embedding cache: round trip, permissions, versions, and recovery from a damaged file."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import numpy as np
import pytest

from edgeface.gallery.cache import CACHE_FILE_NAME, Analysis, EmbeddingCache
from edgeface.types import Box


def _analysis(seed: int = 0) -> Analysis:
    vec = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return Analysis(
        faces=2, embedding=vec / np.linalg.norm(vec), box=Box(1, 2, 30, 40), sharpness=99.5
    )


def test_round_trip_and_failures(tmp_path: Path) -> None:
    with EmbeddingCache.in_state_dir(tmp_path / "state") as cache:
        good = _analysis()
        cache.put("a" * 64, "v1", good)
        cache.put("b" * 64, "v1", Analysis(faces=0, failure="no face found"))
        got = cache.get("a" * 64, "v1")
        assert got is not None and got.embedding is not None and good.embedding is not None
        assert np.array_equal(got.embedding, good.embedding)
        assert (got.faces, got.box, got.sharpness) == (2, Box(1, 2, 30, 40), 99.5)
        assert cache.get("b" * 64, "v1") == Analysis(faces=0, failure="no face found")
        assert cache.get("a" * 64, "v2") is None  # another model: a miss
        assert len(cache) == 2
        assert cache.forget_other_versions("v2") == 2


def test_file_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    with EmbeddingCache.in_state_dir(state) as cache:
        cache.put("a" * 64, "v1", _analysis())
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / CACHE_FILE_NAME).stat().st_mode) == 0o600


def test_survives_reopen(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path / "c.sqlite3") as cache:
        cache.put_many("v1", [(str(i) * 64, _analysis(i)) for i in range(5)])
    with EmbeddingCache(tmp_path / "c.sqlite3") as cache:
        assert len(cache) == 5


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"this is not a database" * 100), id="garbage"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:1500]), id="truncated"),
        pytest.param(
            lambda p: p.write_bytes(p.read_bytes()[:100] + b"\x00" * 50 + p.read_bytes()[150:]),
            id="header-zeroed",
        ),
    ],
)
def test_damaged_file_is_moved_aside_and_rebuilt(
    tmp_path: Path, damage: object, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / CACHE_FILE_NAME
    with EmbeddingCache(path) as cache:
        cache.put_many("v1", [(str(i) * 64, _analysis(i)) for i in range(10)])
    damage(path)  # type: ignore[operator]
    with caplog.at_level(logging.WARNING), EmbeddingCache(path) as cache:
        assert cache.get("0" * 64, "v1") is None
        cache.put("x" * 64, "v1", _analysis())
        assert cache.get("x" * 64, "v1") is not None
    assert any("damaged" in r.message for r in caplog.records)
    assert list(tmp_path.glob(f"{CACHE_FILE_NAME}.damaged-*"))


def test_damage_while_open_is_recovered(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / CACHE_FILE_NAME
    cache = EmbeddingCache(path)
    cache.put("a" * 64, "v1", _analysis())
    path.write_bytes(b"\x00garbage" * 1000)  # e.g. a disk error under a running daemon
    with caplog.at_level(logging.WARNING):
        assert cache.get("a" * 64, "v1") is None
        cache.put("b" * 64, "v1", _analysis())
        assert cache.get("b" * 64, "v1") is not None
    cache.close()
