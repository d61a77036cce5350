"""`edgeface bench`'s detection section: recall by face size next to cost, per tile setting."""

from __future__ import annotations

from daemon_support import make_scene

from edgeface.analyzer import FaceAnalyzer
from edgeface.config import parse_config
from edgeface.detection_bench import bench_detection, format_detection


def test_each_tile_setting_reports_faces_found_by_size_and_its_cost(
    analyzer: FaceAnalyzer, tmp_path
) -> None:
    scene = make_scene(tmp_path, analyzer)
    report = bench_detection(parse_config({}), analyzer, scene.video)
    composed, video = report["sets"].values()
    by_setting = {row["tiles"]: row for row in composed}
    assert list(by_setting) == ["off", "auto", "on", "on, no max_tiles"]
    # 1920x1080: one pass without tiles, more with them; the 640x360 video only when forced.
    assert by_setting["off"]["passes"] == 1.0 < by_setting["on"]["passes"]
    assert [row["passes"] == 1.0 for row in video] == [True, True, False, False]
    off, on = by_setting["off"]["found"]["40-60"], by_setting["on, no max_tiles"]["found"]["40-60"]
    assert off[1] == on[1] > 0 and on[0] > off[0]
    assert all(row["median_ms"] > 0 for row in composed)
    text = "\n".join(format_detection(report))
    assert "detection: faces found" in text and "40-60" in text


def test_a_configured_roi_is_benched_with_the_reference_inside_it(
    analyzer: FaceAnalyzer, tmp_path
) -> None:
    scene = make_scene(tmp_path, analyzer)
    roi = [640, 360, 640, 360]
    report = bench_detection(parse_config({"camera": {"roi": roi}}), analyzer, scene.video)
    composed = next(iter(report["sets"].values()))
    whole = bench_detection(parse_config({}), analyzer, scene.video)
    assert sum(n for _, n in composed[0]["found"].values()) < sum(
        n for _, n in next(iter(whole["sets"].values()))[0]["found"].values()
    )
    assert "camera.roi [640" in "\n".join(format_detection(report))
