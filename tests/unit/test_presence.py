"""Retained presence per enrolled person (edgeface.presence), with a recording sink."""

from __future__ import annotations

from typing import Any

from edgeface.presence import Presence


class Sink:
    def __init__(self) -> None:
        self.sent: list[
            tuple[str, bool | None]
        ] = []  # (person, present) or (person, None): cleared

    def publish_presence(self, person: str, payload: dict[str, Any]) -> None:
        assert payload["person"] == person
        self.sent.append((person, payload["present"]))

    def clear_presence(self, person: str) -> None:
        self.sent.append((person, None))


def test_enrolled_absent_seen_expired_removed_and_stopped() -> None:
    now = [1000.0]
    sink = Sink()
    presence = Presence(sink, "door", timeout=10, clock=lambda: now[0])
    presence.enrolled(["Ana", "Bo"])
    assert sink.sent == [("Ana", False), ("Bo", False)]
    presence.enrolled(["Ana", "Bo"])  # unchanged gallery: nothing new
    assert len(sink.sent) == 2
    presence.seen("Ana", ts=5.0)  # the event's ts is not the expiry clock
    assert sink.sent[-1] == ("Ana", True)
    now[0] += 9
    presence.expire()
    assert sink.sent[-1] == ("Ana", True)
    now[0] += 2
    presence.expire()
    assert sink.sent[-1] == ("Ana", False)
    presence.seen("Bo", ts=6.0)
    presence.enrolled(["Ana"])  # Bo removed from the gallery: cleared
    assert sink.sent[-1] == ("Bo", None)
    presence.seen("Ana", ts=7.0)
    presence.all_absent()
    assert sink.sent[-1] == ("Ana", False)
    count = len(sink.sent)
    presence.all_absent()  # nobody present any more
    assert len(sink.sent) == count
