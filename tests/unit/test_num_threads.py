"""runtime.num_threads follows the board: one interpreter thread per core, at most four."""

from __future__ import annotations

import pytest

from edgeface.config import Config, ConfigError, parse_config


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 2), (4, 4), (8, 4), (None, 1)])
def test_default_follows_the_cpu_count_capped(monkeypatch, cores, expected):
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert Config().runtime.num_threads == expected
    assert parse_config({}).runtime.num_threads == expected
    assert parse_config({"runtime": {"num_threads": None}}).runtime.num_threads == expected


def test_an_explicit_value_wins_and_is_range_checked(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert parse_config({"runtime": {"num_threads": 6}}).runtime.num_threads == 6
    with pytest.raises(ConfigError, match=r"runtime\.num_threads"):
        parse_config({"runtime": {"num_threads": 0}})
