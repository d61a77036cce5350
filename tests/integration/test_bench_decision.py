"""`edgeface bench`: the time from a face's first frame to its decision, on a composed clip.

Checks what is reported (one figure per decision, spans the votes need), never how fast.
"""

from __future__ import annotations

import cv2
import numpy as np
from daemon_support import make_scene

from edgeface.bench import bench_engine, format_bench, random_gallery
from edgeface.pipeline.tracker import TrackerSettings


def test_every_decision_has_its_time_from_the_first_frame(analyzer, tmp_path):
    scene = make_scene(tmp_path, analyzer)
    fps = cv2.VideoCapture(str(scene.video)).get(cv2.CAP_PROP_FPS)
    matcher = random_gallery(np.random.default_rng(1), 100, analyzer.embedder.size)
    settings = TrackerSettings(votes_to_decide=3)
    result = bench_engine(analyzer, scene.video, matcher, settings)
    decisions = result["time_to_decision"]
    # Two people walk through (her, then a stranger): each gets one decision.
    assert decisions["felt"]["n"] == decisions["video"]["n"] == 2
    # Three votes need three frames: the video span covers at least that.
    assert decisions["video"]["median_ms"] >= 3 / fps * 1000 - 1e-6
    assert decisions["processing"]["median_ms"] > 0
    assert decisions["felt"]["median_ms"] >= decisions["video"]["median_ms"]
    assert decisions["felt"]["median_ms"] >= decisions["processing"]["median_ms"]


def test_the_report_prints_the_time_to_decision():
    zero = {"median_ms": 0.0, "p95_ms": 0.0, "n": 0}
    felt = {"median_ms": 412.0, "p95_ms": 530.0, "n": 2}
    variant = {
        "detector": "d",
        "embedder": "e",
        "fps": 1.0,
        "faces_per_second": 1.0,
        "stages": {"detect": zero},
        "gflops": {"detector": None, "embedder": None},
        "pipeline": {
            "fps": 1.0,
            "frames": 1,
            "faces": 1,
            "embedded": 1,
            "time_to_decision": {"processing": felt, "video": felt, "felt": felt},
        },
    }
    machine = {k: "x" for k in ("cpu", "cores", "machine", "python", "numpy", "opencv", "runtime")}
    report = {
        "machine": machine,
        "threads": 1,
        "variants": [variant],
        "matcher": [],
        "detection": {
            "roi": None,
            "frames": {"faces": 0, "no_face": 0, "size": [1920, 1080]},
            "rows": [],
            "skipped": [],
        },
        "peak_rss_mb": 1,
    }
    text = format_bench(report)
    assert "first frame to its recognized/unknown event" in text
    assert "2 decisions   processing 412 (530)   video 412 (530)   felt 412 (530)" in text
