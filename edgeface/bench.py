"""`edgeface bench`: per-stage latency and throughput of the real pipeline on a video.

Owns: timing decode, detect, align, embed, match and publish-serialisation for every frame
with every face embedded (the worst case), end-to-end frames per second, faces per second,
the embedders against each other on the same crops, matcher scaling, and a description of the
machine (the daemon's own cold start and memory come from `edgeface.footprint`). Medians and
p95, never means: these machines are noisy. Never: part of the daemon or of the test suite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeface.align import align_face
from edgeface.analyzer import FaceAnalyzer, open_embedder
from edgeface.config import Config
from edgeface.detection_bench import bench_detection, format_detection
from edgeface.embed import at_input_size
from edgeface.errors import EdgefaceError
from edgeface.footprint import format_footprint
from edgeface.gallery.matcher import Matcher, Thresholds
from edgeface.models import find_model
from edgeface.pipeline.engine import Engine
from edgeface.pipeline.tracker import Tracker, TrackerSettings
from edgeface.plots import Axis, line_chart
from edgeface.runtime import TFLiteModel, runtime_info
from edgeface.types import Box, Event, Frame


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rt = runtime_info()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "runtime": f"{rt.module} {rt.version}",
    }


def summarise(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median_ms": 0.0, "p95_ms": 0.0, "n": 0}
    ms = np.asarray(values) * 1000
    return {
        "median_ms": round(float(np.median(ms)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "n": len(values),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class StageTimer:
    samples: dict[str, list[float]] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.samples.setdefault(name, []).append(time.perf_counter() - start)


def bench_video(
    analyzer: FaceAnalyzer, video: Path, matcher: Matcher, repeat: int = 1
) -> dict[str, Any]:
    """Every frame decoded and processed, every face aligned, embedded and matched."""
    timer = StageTimer()
    frames = faces = 0
    frame_totals: list[float] = []
    wall_start = time.perf_counter()
    for _ in range(repeat):
        capture = cv2.VideoCapture(str(video))
        if not capture.isOpened():
            raise EdgefaceError(f"--video {video}: cannot be opened")
        while True:
            t0 = time.perf_counter()
            ok, image = capture.read()
            if not ok:
                break
            timer.samples.setdefault("decode", []).append(time.perf_counter() - t0)
            with timer.stage("detect"):
                found = analyzer.detect(image)
            for face in found:
                with timer.stage("align"):
                    aligned = align_face(image, face, analyzer.align_settings)
                with timer.stage("embed"):
                    embedding = analyzer.embedder.embed(aligned.crop_rgb)
                with timer.stage("match"):
                    match = matcher.match(embedding)
                with timer.stage("publish"):
                    _event(match.person, match.score, face.box).to_json()
            frames += 1
            faces += len(found)
            frame_totals.append(time.perf_counter() - t0)
        capture.release()
    wall = time.perf_counter() - wall_start
    return {
        "video": str(video),
        "frames": frames,
        "faces": faces,
        "fps": round(frames / wall, 2),
        "faces_per_second": round(faces / wall, 2),
        "frame_total": summarise(frame_totals),
        "stages": {name: summarise(values) for name, values in timer.samples.items()},
    }


def bench_engine(
    analyzer: FaceAnalyzer, video: Path, matcher: Matcher, tracking: TrackerSettings
) -> dict[str, Any]:
    """The daemon's own pipeline on every frame: tracking decides which faces are embedded.

    Also the time from a face's first frame to its `recognized`/`unknown` event, what a person
    at a doorbell waits: `processing` is the pipeline's own time over those frames (every frame
    processed), `video` the span of video they cover, and `felt` the larger of the two, as on a
    live camera that delivers frames at the video's rate to a daemon keeping the newest.
    """
    engine = Engine(analyzer, lambda: matcher, Tracker(tracking), "bench")
    capture = cv2.VideoCapture(str(video))
    fps_source = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames = faces = embedded = events = 0
    totals: list[float] = []
    started: list[float] = []  # per frame: when its processing started
    first_seen: dict[int, float] = {}  # per track id, kept after the track ends
    decisions: dict[str, list[float]] = {"processing": [], "video": [], "felt": []}
    wall_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        ok, image = capture.read()
        if not ok:
            break
        started.append(t0)
        result = engine.process(Frame(image, frames / fps_source, frames, "bench"))
        done = time.perf_counter()
        totals.append(done - t0)
        # A track decided as it expires (too few votes before it left) is gone from the tracker.
        first_seen.update({i: t.first_seen for i, t in engine.tracker.tracks.items()})
        for event in result.events:
            if event.type in ("recognized", "unknown"):
                first = first_seen[event.track_id]
                processing = done - started[round(first * fps_source)]
                video_span = event.ts - first + 1.0 / fps_source
                decisions["processing"].append(processing)
                decisions["video"].append(video_span)
                decisions["felt"].append(max(processing, video_span))
        frames += 1
        faces += result.faces
        embedded += result.embedded
        events += len(result.events)
    capture.release()
    wall = time.perf_counter() - wall_start
    return {
        "frames": frames,
        "faces": faces,
        "embedded": embedded,
        "events": events + len(engine.finish(frames / fps_source).events),
        "fps": round(frames / wall, 2),
        "frame_total": summarise(totals),
        "time_to_decision": {name: summarise(v) for name, v in decisions.items()},
    }


def _event(person: str | None, score: float, box: Box) -> Event:
    return Event("id", "recognized", 1, person, score, None, box, "cam", "dev", time.time(), "m")


def frame_size(video: Path) -> tuple[int, int]:
    """Width and height of the video's frames."""
    capture = cv2.VideoCapture(str(video))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    if min(size) <= 0:
        raise EdgefaceError(f"--video {video}: cannot be opened")
    return size


def model_gflops(path: Path) -> float:
    """Multiply-adds x 2 of the convolutions and fully connected layers, from the model graph."""
    return 2 * TFLiteModel(path).multiply_accumulates() / 1e9


def bench_matcher(
    sizes: list[int], dimension: int, probes: int = 200, seed: int = 0
) -> list[dict[str, Any]]:
    """Match latency per probe against N templates (5 per person), random unit vectors."""
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        matcher = random_gallery(rng, size, dimension)
        queries = _unit_rows(rng, probes, dimension)
        times = []
        for q in queries:
            start = time.perf_counter()
            matcher.match(q)
            times.append(time.perf_counter() - start)
        rows.append(
            {
                "templates": size,
                "people": size // 5,
                **summarise(times),
                "memory_mb_per_1000_templates": round(
                    matcher.templates.nbytes / size * 1000 / 2**20, 3
                ),
            }
        )
    return rows


def run_bench(
    cfg: Config, video: Path, embedders: list[str], detectors: list[str], repeat: int
) -> dict[str, Any]:
    cache = Path(cfg.models.cache_dir) if cfg.models.cache_dir else None
    report: dict[str, Any] = {
        "machine": machine(),
        "threads": cfg.runtime.num_threads,
        "variants": [],
    }
    dimension = FaceAnalyzer.from_config(cfg).embedder.size
    size = frame_size(video)
    for detector in detectors:
        for embedder in embedders:
            variant = dataclasses.replace(
                cfg, models=dataclasses.replace(cfg.models, detector=detector, embedder=embedder)
            )
            start = time.perf_counter()
            analyzer = FaceAnalyzer.from_config(variant)
            load = time.perf_counter() - start
            gallery = random_gallery(np.random.default_rng(1), 1000, analyzer.embedder.size)
            result = bench_video(analyzer, video, gallery, repeat)
            result["pipeline"] = bench_engine(
                analyzer, video, gallery, TrackerSettings(**dataclasses.asdict(cfg.tracking))
            )
            result.update(
                {
                    "detector": detector,
                    "embedder": embedder,
                    "model_load_s": round(load, 3),
                    "gflops": {
                        # Per frame of this video: YuNet's work depends on the frame size.
                        "detector": 2 * analyzer.detector.multiply_accumulates(*size) / 1e9,
                        "embedder": model_gflops(find_model(embedder, cache)[0]),
                    },
                }
            )
            report["variants"].append(result)
    if len(embedders) > 1:
        crops = video_crops(FaceAnalyzer.from_config(cfg), video)
        if crops:
            report["embedders"] = bench_embedders(cfg, embedders, crops)
    report["detection"] = bench_detection(cfg)
    report["matcher"] = bench_matcher([100, 1_000, 10_000, 50_000, 100_000], dimension)
    report["matcher_dimension"] = dimension
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return report


def video_crops(analyzer: FaceAnalyzer, video: Path, limit: int = 24) -> list[np.ndarray]:
    """Aligned face crops from the video, spread over it: the inputs for `bench_embedders`."""
    capture = cv2.VideoCapture(str(video))
    total = max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    crops: list[np.ndarray] = []
    index = 0
    while len(crops) < limit:
        ok, image = capture.read()
        if not ok:
            break
        if index % max(1, total // limit) == 0:
            faces = analyzer.detect(image)[:1]
            crops += [align_face(image, f, analyzer.align_settings).crop_rgb for f in faces]
        index += 1
    capture.release()
    return crops


def bench_embedders(
    cfg: Config, embedders: list[str], crops: list[np.ndarray], rounds: int = 15
) -> dict[str, Any]:
    """Each embedder on the same crops, interleaved round by round, so that a machine slowing
    down or speeding up mid-run affects all of them alike; the ratios are to the first one."""
    cache = Path(cfg.models.cache_dir) if cfg.models.cache_dir else None
    models = {name: open_embedder(name, cache, cfg.runtime.num_threads) for name in embedders}
    # Each model at its own input size (112 for SFace, 160 for FaceNet): the cost is per face.
    sized = {name: [at_input_size(c, e.input_size) for c in crops] for name, e in models.items()}
    samples: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(rounds):
        for name, embedder in models.items():
            for crop in sized[name]:
                start = time.perf_counter()
                embedder.embed(crop)
                samples[name].append(time.perf_counter() - start)
    medians = {name: float(np.median(v)) for name, v in samples.items()}
    first = embedders[0]
    return {
        "crops": len(crops),
        "rounds": rounds,
        "per_face": {name: summarise(v) for name, v in samples.items()},
        "speedup_over_first": {name: medians[first] / m for name, m in medians.items()},
    }


def _unit_rows(rng: np.random.Generator, count: int, dimension: int) -> np.ndarray:
    rows = rng.normal(size=(count, dimension)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def random_gallery(rng: np.random.Generator, size: int, dimension: int) -> Matcher:
    """`size` random unit templates of the embedder's width, five per person."""
    return Matcher(
        _unit_rows(rng, size, dimension),
        [f"p{i // 5}" for i in range(size)],
        Thresholds.from_config(Config().recognition),
    )


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"machine: {m['cpu']}, {m['cores']} cores, {m['machine']}, python {m['python']},"
        f" numpy {m['numpy']}, opencv {m['opencv']}, {m['runtime']}"
    )


def format_bench(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"{machine_line(m)}; {report['threads']} thread(s)",
        "",
        "every face embedded on every frame (median ms per call; p95 in brackets)",
        f"{'detector':<16} {'embedder':<16} {'fps':>6} {'faces/s':>8} {'decode':>12} {'detect':>12}"
        f" {'align':>11} {'embed':>12} {'match':>11}",
    ]
    for v in report["variants"]:
        s = v["stages"]

        def cell(name: str, s: dict[str, Any] = s) -> str:
            x = s.get(name, {"median_ms": 0, "p95_ms": 0})
            return f"{x['median_ms']:.2f}({x['p95_ms']:.1f})"

        lines.append(
            f"{v['detector']:<16} {v['embedder']:<16} {v['fps']:>6.1f} {v['faces_per_second']:>8.1f}"
            f" {cell('decode'):>12} {cell('detect'):>12} {cell('align'):>11} {cell('embed'):>12}"
            f" {cell('match'):>11}"
        )
    lines += [
        "",
        "model cost (GFLOP = multiply-adds x 2, per frame / per face) and effective speed",
    ]
    for v in report["variants"]:
        g, stages = v["gflops"], v["stages"]
        det_ms = stages["detect"]["median_ms"]
        emb_ms = stages.get("embed", {}).get("median_ms", 0.0)
        if g["detector"] and g["embedder"] and det_ms and emb_ms:
            lines.append(
                f"{v['detector']:<16} {g['detector']:.3f} GFLOP ({g['detector'] / det_ms * 1000:.1f} GFLOP/s)"
                f"   {v['embedder']:<16} {g['embedder']:.3f} GFLOP ({g['embedder'] / emb_ms * 1000:.1f} GFLOP/s)"
            )
    lines += [
        "",
        "the daemon's pipeline (tracking; only new, undecided and re-checked faces embedded)",
    ]
    lines.append(
        f"{'detector':<16} {'embedder':<16} {'fps':>6} {'frames':>7} {'faces':>6} {'embedded':>9}"
    )
    for v in report["variants"]:
        p = v["pipeline"]
        lines.append(
            f"{v['detector']:<16} {v['embedder']:<16} {p['fps']:>6.1f} {p['frames']:>7} {p['faces']:>6}"
            f" {p['embedded']:>9}"
        )
    lines += [
        "",
        "time from a face's first frame to its recognized/unknown event (median ms; p95 in"
        " brackets): pipeline time over those frames, video they span, felt on a live camera",
    ]
    for v in report["variants"]:
        d = v["pipeline"]["time_to_decision"]
        lines.append(
            f"{v['detector']:<16} {v['embedder']:<16} {d['felt']['n']:>3} decisions"
            + "".join(
                f"   {name} {d[name]['median_ms']:.0f} ({d[name]['p95_ms']:.0f})"
                for name in ("processing", "video", "felt")
            )
        )
    if "embedders" in report:
        e = report["embedders"]
        first = next(iter(e["per_face"]))
        lines += [
            "",
            f"embedders interleaved on the same {e['crops']} face crops x {e['rounds']} rounds"
            f" (median ms per face; p95 in brackets)",
        ]
        for name, t in e["per_face"].items():
            lines.append(
                f"{name:<16} {t['median_ms']:>7.2f} ({t['p95_ms']:.1f})"
                f"   {e['speedup_over_first'][name]:.2f}x {first}"
            )
    lines += format_detection(report["detection"])
    lines += ["", "matching one probe (random unit vectors, 5 templates per person)"]
    lines.append(f"{'templates':>10} {'median ms':>10} {'p95 ms':>8} {'MB/1000':>8}")
    for r in report["matcher"]:
        lines.append(
            f"{r['templates']:>10} {r['median_ms']:>10.3f} {r['p95_ms']:>8.3f}"
            f" {r['memory_mb_per_1000_templates']:>8.2f}"
        )
    lines.append(
        f"\npeak resident memory of this benchmark process (every variant loaded):"
        f" {report['peak_rss_mb']} MB"
    )
    if "daemon" in report:
        lines.append(format_footprint(report["daemon"]))
    return "\n".join(lines)


def plot_bench(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Match latency against gallery size, and frames per second per model variant."""
    matcher_png, fps_png = out_dir / "match_latency.png", out_dir / "fps_per_variant.png"
    rows = report["matcher"]
    line_chart(
        {
            "median": [(r["templates"], r["median_ms"]) for r in rows],
            "p95": [(r["templates"], r["p95_ms"]) for r in rows],
        },
        Axis("templates", rows[0]["templates"], rows[-1]["templates"], log=True),
        Axis("ms per probe", 0.0, max(r["p95_ms"] for r in rows) * 1.1),
        matcher_png,
        "matching one probe",
    )
    variants = report["variants"]
    top = max(max(v["pipeline"]["fps"], v["fps"]) for v in variants) * 1.1
    line_chart(
        {
            "daemon pipeline": [(i + 1, v["pipeline"]["fps"]) for i, v in enumerate(variants)],
            "every face embedded": [(i + 1, v["fps"]) for i, v in enumerate(variants)],
        },
        Axis(
            "variant (see bench.json: 1 = first detector/embedder pair)", 1, max(len(variants), 2)
        ),
        Axis("frames per second", 0.0, top),
        fps_png,
        "frames per second per model variant",
    )
    return [matcher_png, fps_png]


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
