"""The at-least-once check that the broker fault test relies on, on hand-made delivery logs.

The fault test cannot choose whether a broker kill lands while an event is in flight, so these
cases show the check accepts exactly the redeliveries the README allows and rejects the rest.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from broker import Received
from daemon_support import EVENTS, assert_at_least_once_in_order

LOGGED = [("recognized", 1), ("left", 1), ("unknown", 2), ("left", 2)]


def _event(n: int) -> dict[str, Any]:
    kind, track = LOGGED[n]
    event: dict[str, Any] = {
        "schema": "1.0",
        "id": f"e{n}",
        "type": kind,
        "track_id": track,
        "person": "lin" if track == 1 and kind == "recognized" else None,
        "score": 0.7,
        "runner_up": None,
        "box": [1, 2, 30, 30],
        "camera": "door",
        "device": "dev1",
        "ts": 100.0 + n,
        "model": "m",
    }
    if kind == "left":
        event["duration"] = 1.0
    return event


def _log(*copies: tuple[int, int]) -> list[Received]:
    """(event index, subscriber connection) pairs, in arrival order."""
    return [
        Received(EVENTS, json.dumps(_event(n)).encode(), False, 1, connection)
        for n, connection in copies
    ]


def test_a_redelivery_after_an_outage_is_accepted() -> None:
    # e1 was in flight at the outage: it comes again first on the next connection
    assert_at_least_once_in_order(_log((0, 1), (1, 1), (1, 2), (2, 2), (3, 2)), LOGGED, 1, 10)


def test_no_redelivery_at_all_is_accepted() -> None:
    assert_at_least_once_in_order(_log((0, 1), (1, 1), (2, 2), (3, 3)), LOGGED, 2, 10)


@pytest.mark.parametrize(
    ("copies", "message"),
    [
        (((0, 1), (1, 1), (1, 1), (2, 1), (3, 1)), "without a broker outage"),
        (((0, 1), (1, 1), (2, 2), (1, 2), (3, 2)), "after a newer event"),
        (((0, 1), (1, 1), (3, 2)), "lost or reordered"),
        (((0, 1), (2, 1), (1, 1), (3, 1)), "lost or reordered"),
        (((0, 1), (1, 1), (0, 2), (1, 2), (2, 2), (3, 2)), "redeliveries"),
    ],
    ids=["twice-on-one-connection", "behind-a-newer-event", "lost", "reordered", "too-many"],
)
def test_what_the_promise_forbids_is_caught(
    copies: tuple[tuple[int, int], ...], message: str
) -> None:
    with pytest.raises(AssertionError, match=message):
        assert_at_least_once_in_order(_log(*copies), LOGGED, 1, 1)


def test_a_redelivery_with_other_bytes_is_caught() -> None:
    deliveries = _log((0, 1), (1, 1), (1, 2), (2, 2), (3, 2))
    changed = json.loads(deliveries[2].payload) | {"score": 0.5}
    deliveries[2] = Received(EVENTS, json.dumps(changed).encode(), False, 1, 2)
    with pytest.raises(AssertionError, match="different bytes"):
        assert_at_least_once_in_order(deliveries, LOGGED, 1, 10)
