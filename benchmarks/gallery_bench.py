"""Gallery speed: match latency per probe, and photo-to-usable latency of a watched gallery.

(a) Matcher.match on random unit vectors (512-d) for galleries of 100, 1,000, 50,000
    (10,000 people x 5 templates) and 100,000 templates: median and p95 over many probes.
(b) Time from a photo's final rename into a watched gallery (inotify and polling, default
    settings) until the Matcher handed to the callback contains it. Needs the built models
    and scikit-image (for the astronaut photo).

Usage: .venv/bin/python benchmarks/gallery_bench.py [--probes 2000] [--rounds 5] [--skip-watch]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from edgeface.gallery.matcher import Matcher, Thresholds

DIM = 512


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def bench_match(probes: int) -> None:
    rng = np.random.default_rng(0)
    print(f"{'templates':>10} {'people':>7} {'median ms':>10} {'p95 ms':>8}")
    for templates, per_person in [(100, 5), (1_000, 5), (50_000, 5), (100_000, 5)]:
        people = [f"person-{i // per_person}" for i in range(templates)]
        matcher = Matcher(unit_vectors(rng, templates), people, Thresholds(0.6, 0.45))
        queries = unit_vectors(rng, probes)
        for q in queries[:20]:  # warm caches and BLAS threads
            matcher.match(q)
        times = []
        for q in queries:
            start = time.perf_counter()
            matcher.match(q)
            times.append(time.perf_counter() - start)
        ms = np.array(times) * 1000
        print(
            f"{templates:>10,} {templates // per_person:>7,} {np.median(ms):>10.3f}"
            f" {np.percentile(ms, 95):>8.3f}"
        )


def bench_watch(rounds: int) -> None:
    import cv2
    from skimage import data

    from edgeface.analyzer import FaceAnalyzer
    from edgeface.config import Config, GalleryConfig
    from edgeface.gallery.cache import EmbeddingCache
    from edgeface.gallery.store import Gallery, GalleryUpdate
    from edgeface.gallery.watcher import GalleryWatcher

    analyzer = FaceAnalyzer.from_config(Config())
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    for watch in (True, False):
        latencies = []
        with tempfile.TemporaryDirectory() as tmp:
            root, state = Path(tmp) / "gallery", Path(tmp) / "state"
            root.mkdir()
            seen: dict[str, float] = {}
            lock = threading.Lock()

            def on_update(
                update: GalleryUpdate,
                seen: dict[str, float] = seen,
                lock: threading.Lock = lock,
            ) -> None:
                with lock:
                    for name in update.matcher.person_names:
                        seen.setdefault(name, time.monotonic())

            settings = GalleryConfig(path=str(root), watch=watch)
            gallery = Gallery(
                root,
                settings,
                Thresholds(0.6, 0.45),
                analyzer,
                EmbeddingCache.in_state_dir(state),
            )
            watcher = GalleryWatcher.from_gallery_config(gallery, on_update)
            watcher.start()
            time.sleep(0.5)
            for i in range(rounds):
                # A different picture each round so the cache cannot answer.
                image = cv2.resize(face, None, fx=0.9 + 0.02 * i, fy=0.9 + 0.02 * i)
                person = root / f"person-{i}"
                person.mkdir()
                tmp_file = person / ".photo.jpg.part"
                tmp_file.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
                renamed = time.monotonic()
                tmp_file.rename(person / "photo.jpg")
                deadline = renamed + 10
                while time.monotonic() < deadline:
                    with lock:
                        if f"person-{i}" in seen:
                            latencies.append(seen[f"person-{i}"] - renamed)
                            break
                    time.sleep(0.005)
                time.sleep(0.3)
            watcher.stop()
        mode = "inotify" if watch else f"polling every {settings.poll_interval:g}s"
        print(
            f"photo-to-usable ({mode}, settle {settings.settle_seconds:g}s): "
            f"median {statistics.median(latencies):.3f}s, max {max(latencies):.3f}s "
            f"over {len(latencies)} photos"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-watch", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; numpy {np.__version__}; python {platform.python_version()}")
    bench_match(args.probes)
    if not args.skip_watch:
        bench_watch(args.rounds)


if __name__ == "__main__":
    main()
