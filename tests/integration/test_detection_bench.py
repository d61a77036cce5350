"""`edgeface bench`'s detection section: per detector setting, recall by face size, false faces on
the no-face scenes, and cost, all on the same frames."""

from __future__ import annotations

from edgeface.config import parse_config
from edgeface.detection_bench import SETTINGS, bench_detection, format_detection


def test_each_detector_setting_reports_recall_false_faces_and_cost() -> None:
    report = bench_detection(parse_config({}))
    rows = {row["setting"]: row for row in report["rows"]}
    assert list(rows) == [label for label, _, _ in SETTINGS] and report["skipped"] == []
    off, auto = rows["blazeface-full, tiles off"], rows["blazeface-full, tiles auto"]
    yunet = rows["yunet, min_face_px 40"]
    # The unit of cost is one BlazeFace pass at 640x480; tiles only add passes at 1080p.
    assert off["ratio_small"] == 1.0 and auto["mmacs"] > off["mmacs"] == off["mmacs_small"]
    # YuNet at the defaults: the small faces BlazeFace misses, no false face, under 2x at 640x480.
    assert yunet["found"]["40-60"][0] > off["found"]["40-60"][0]
    assert yunet["false_per_100"] == yunet["false_per_100_small"] == 0
    assert yunet["ratio_small"] <= 2.0
    # A smaller min_face_px searches finer: more work.
    assert rows["yunet, min_face_px 24"]["mmacs"] > yunet["mmacs"]
    assert all(row["median_ms"] > 0 for row in rows.values())
    text = "\n".join(format_detection(report))
    assert "false faces per 100 no-face frames" in text and "yunet, min_face_px 40" in text


def test_a_configured_roi_is_benched_with_the_reference_inside_it() -> None:
    roi = [640, 360, 640, 360]
    report = bench_detection(parse_config({"camera": {"roi": roi}}))
    whole = bench_detection(parse_config({}))

    def pasted(r: dict) -> int:
        return sum(n for _, n in r["rows"][0]["found"].values())

    assert 0 < pasted(report) < pasted(whole)
    assert "camera.roi [640" in "\n".join(format_detection(report))
