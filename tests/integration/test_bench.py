"""`edgeface bench` and the daemon footprint, run for real on a short composed video.

These check what the benchmark reports (every frame processed, every stage timed, the files
it writes), never how fast anything is: speed figures live in the benchmark's output.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

from daemon_support import make_scene

from edgeface.footprint import PHOTOS_EACH, measure_footprint

STAGES = {"decode", "detect", "align", "embed", "match", "publish"}


def test_bench_times_every_stage_on_every_frame(analyzer, tmp_path):
    scene = make_scene(tmp_path, analyzer)
    out = tmp_path / "results" / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeface",
            "bench",
            "--video",
            str(scene.video),
            "--embedders",
            "facenet-dynamic,facenet-int8",
            "--footprint-runs",
            "0",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "machine: " in result.stdout and "ai_edge_litert" in result.stdout
    report = json.loads(out.read_text())
    assert [v["embedder"] for v in report["variants"]] == ["facenet-dynamic", "facenet-int8"]
    variant = report["variants"][0]
    assert variant["frames"] == scene.frames
    assert variant["faces"] > 0
    assert set(variant["stages"]) == STAGES
    assert all(s["median_ms"] > 0 for s in variant["stages"].values())
    pipeline = variant["pipeline"]
    assert pipeline["frames"] == scene.frames
    # The daemon's pipeline embeds only what tracking asks for: far fewer than every face.
    assert 0 < pipeline["embedded"] < variant["faces"]
    assert pipeline["events"] >= 4  # her and the stranger: recognized/unknown + left each
    # The quantization gain comes from both embedders timed in turns on the same crops.
    embedders = report["embedders"]
    assert embedders["crops"] > 0 and list(embedders["per_face"]) == [
        "facenet-dynamic",
        "facenet-int8",
    ]
    assert embedders["speedup_over_first"]["facenet-dynamic"] == 1.0
    assert "embedders interleaved" in result.stdout
    assert [r["templates"] for r in report["matcher"]] == [100, 1_000, 10_000, 50_000, 100_000]
    for png in ("match_latency.png", "fps_per_variant.png"):
        assert (out.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_footprint_measures_the_daemon_starting_on_a_cached_gallery(tmp_path):
    people = 3
    result = measure_footprint(runs=1, people=people, root=tmp_path, log=lambda _: None)
    assert result["gallery_photos"] == people * PHOTOS_EACH
    assert math.isfinite(result["first_run_ready_s"])  # READY=1 arrived
    assert math.isfinite(result["cold_start_to_ready_s"])
    assert result["peak_rss_mb"] > 50  # models loaded and a video processed
    assert result["open_fds"] > 0
    cache = list((tmp_path / "state").rglob("*.sqlite*"))
    assert cache, "the first start should have filled the embedding cache"


def test_a_face_decided_as_its_track_ends_is_timed(analyzer, astronaut_bgr, tmp_path):
    """A face seen in two frames only is decided when its track expires: the pipeline benchmark
    must time that decision, not fail on the track being gone."""
    import dataclasses

    import numpy as np

    from edgeface.bench import bench_engine, random_gallery
    from edgeface.config import Config
    from edgeface.pipeline.tracker import TrackerSettings
    from edgeface.samples import Appearance, compose_video, head_patch

    box = analyzer.detect(astronaut_bgr)[0].box
    patch = head_patch(astronaut_bgr, (box.x, box.y, box.w, box.h), 1.9, 170)
    video = tmp_path / "glimpse.avi"
    # Two frames at 15 fps: fewer than tracking.votes_to_decide (3), enough to decide at exit.
    compose_video(video, [Appearance(patch, 0.0, 2 / 15, (200, 90), (200, 90))], duration=3.0)
    tracking = TrackerSettings(**dataclasses.asdict(Config().tracking))
    gallery = random_gallery(np.random.default_rng(0), 10, analyzer.embedder.size)
    result = bench_engine(analyzer, video, gallery, tracking)
    assert result["embedded"] == 2
    assert result["time_to_decision"]["video"]["n"] == 1
