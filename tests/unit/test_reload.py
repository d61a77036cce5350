"""What a reload applies live and what it leaves for a restart (edgeface.reload)."""

from __future__ import annotations

import dataclasses

from edgeface.config import Config, parse_config
from edgeface.reload import changed_keys, plan_reload


def _with(cfg: Config, section: str, **values: object) -> Config:
    return dataclasses.replace(
        cfg, **{section: dataclasses.replace(getattr(cfg, section), **values)}
    )


def test_changed_keys_are_dotted_leaves() -> None:
    old = Config()
    new = _with(
        _with(old, "camera", fps_cap=9.0),
        "mqtt",
        tls=dataclasses.replace(old.mqtt.tls, insecure=True),
    )
    assert changed_keys(old, new) == ["camera.fps_cap", "mqtt.tls.insecure"]
    assert changed_keys(old, old) == []


def test_plan_applies_decisions_tracking_gallery_and_keeps_the_rest() -> None:
    running = Config()
    threshold = running.recognition.match_threshold + 0.1
    loaded = _with(running, "recognition", match_threshold=threshold, margin=0.5)
    loaded = _with(loaded, "tracking", votes_to_decide=7)
    loaded = _with(loaded, "gallery", min_face_px=99)
    loaded = _with(loaded, "camera", source="other.avi")
    plan = plan_reload(running, loaded)
    assert sorted(plan.live) == [
        "gallery.min_face_px",
        "recognition.match_threshold",
        "tracking.votes_to_decide",
    ]
    assert plan.restart == ["camera.source", "recognition.margin"]
    assert plan.config.recognition.match_threshold == threshold
    assert plan.config.recognition.margin == running.recognition.margin
    assert plan.config.tracking.votes_to_decide == 7
    assert plan.config.gallery.min_face_px == 99
    assert plan.config.camera == running.camera
    assert plan.section_changed("gallery") and not plan.section_changed("camera")


def test_decision_settings_wait_for_the_embedder_they_belong_to() -> None:
    """A file switching to the CASIA model brings CASIA's thresholds; the MS-Celeb model runs
    until the restart, so they wait with it (and are applied live when the model stays)."""
    running = Config()
    loaded = parse_config({"models": {"embedder": "facenet-dynamic"}})
    assert loaded.recognition.match_threshold != running.recognition.match_threshold
    plan = plan_reload(running, loaded)
    assert plan.live == []
    assert plan.restart == [
        "models.embedder",
        "recognition.match_threshold",
        "recognition.unknown_threshold",
    ]
    assert plan.config.recognition == running.recognition
    assert "the decision settings go with models.embedder" in plan.postponed()
    same_model = parse_config({"recognition": {"match_threshold": 0.7}})
    plan = plan_reload(running, same_model)
    assert plan.live == ["recognition.match_threshold"]
    assert plan.applied() == "recognition.match_threshold=0.7"
