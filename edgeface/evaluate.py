"""Accuracy on a labelled folder: open-set identification as the daemon meets it, and verification.

Owns: reading LABELS.csv / PAIRS.csv, embedding each photo once per model, and the metrics:
identification with several photos enrolled per person and strangers probed (correct accepts,
enrolled people named as someone else, misses and strangers named, at the model's operating
point and at FPIR 1 %, plus a DET curve); 10-fold cross-validated verification accuracy, AUC,
TAR at FAR 1e-2. Photos where no face is found are counted in every table, never dropped.
Never: decides thresholds for the daemon (it reports them), or writes outside the given outputs.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edgeface.errors import EdgefaceError
from edgeface.gallery.matcher import Matcher, Thresholds
from edgeface.plots import Axis, line_chart
from edgeface.types import Embedding, ImageBGR, RunnerUp

NOT_A_PERSON = frozenset({"group", "unknown", "none"})
# Scores given to a pair or probe where a face is missing: always a rejection.
NO_FACE_SCORE = -1.0


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    relative: str
    identity: str


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool


@dataclass(frozen=True)
class ImageResult:
    embedding: Embedding | None
    crop_hash: int | None  # perceptual hash of the face crop, to spot near-duplicates
    face_px: float | None = None  # the face box's shorter side, for the per-size report
    turn: float | None = None  # edgeface.align.head_turn, for recognition.max_turn


def read_labels(labels: Path, root: Path) -> list[LabelledImage]:
    rows = _read_csv(labels, ("path", "identity"))
    images = []
    for line, row in rows:
        rel, identity = row["path"].strip(), row["identity"].strip()
        if not rel or not identity:
            raise EdgefaceError(f"{labels}:{line}: expected path and identity, got {row}")
        images.append(LabelledImage(root / rel, rel, identity))
    return images


def read_pairs(pairs: Path) -> list[Pair]:
    result = []
    for line, row in _read_csv(pairs, ("path_a", "path_b", "same")):
        same = row["same"].strip()
        if same not in ("0", "1"):
            raise EdgefaceError(f"{pairs}:{line}: column same: expected 0 or 1, got {same!r}")
        result.append(Pair(row["path_a"].strip(), row["path_b"].strip(), same == "1"))
    return result


def _read_csv(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise EdgefaceError(
                    f"{path}: expected columns {', '.join(columns)}, missing {missing}"
                )
            return [(i + 2, row) for i, row in enumerate(reader)]
    except FileNotFoundError as exc:
        raise EdgefaceError(f"{path}: no such file") from exc


def dhash(crop_rgb: ImageBGR) -> int:
    gray = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def is_near_duplicate(a: ImageResult, b: ImageResult, max_bits: int = 6) -> bool:
    if a.crop_hash is None or b.crop_hash is None:
        return False
    return bin(a.crop_hash ^ b.crop_hash).count("1") <= max_bits


# --- metrics (pure) ---------------------------------------------------------------------------


def auc(genuine: npt.NDArray[np.float64], impostor: npt.NDArray[np.float64]) -> float:
    """Probability that a genuine pair scores above an impostor pair (ties count half)."""
    if not len(genuine) or not len(impostor):
        return float("nan")
    greater = (genuine[:, None] > impostor[None, :]).sum()
    ties = (genuine[:, None] == impostor[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(genuine) * len(impostor)))


def tar_at_far(
    genuine: npt.NDArray[np.float64], impostor: npt.NDArray[np.float64], far: float
) -> float:
    """Share of genuine pairs accepted at the lowest threshold whose FAR is at most `far`."""
    if not len(genuine) or not len(impostor):
        return float("nan")
    ordered = np.sort(impostor)[::-1]
    allowed = int(np.floor(far * len(impostor)))
    threshold = ordered[allowed] if allowed < len(ordered) else -np.inf
    return float((genuine > threshold).mean())


def best_threshold(scores: npt.NDArray[np.float64], same: npt.NDArray[np.bool_]) -> float:
    """The accuracy-maximising threshold, placed midway between neighbouring scores."""
    unique = np.unique(scores)
    candidates = np.concatenate(
        [[unique[0] - 1e-6], (unique[:-1] + unique[1:]) / 2, [unique[-1] + 1e-6]]
    )
    accuracies = [((scores >= t) == same).mean() for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def cross_validated_accuracy(
    scores: npt.NDArray[np.float64], same: npt.NDArray[np.bool_], folds: int = 10, seed: int = 0
) -> tuple[float, float]:
    """Mean and std of accuracy when each fold is scored at a threshold fitted on the others."""
    if len(scores) < folds:
        folds = max(2, len(scores))
    order = np.random.default_rng(seed).permutation(len(scores))
    accuracies = []
    for fold in np.array_split(order, folds):
        train = np.setdiff1d(order, fold)
        if not len(fold) or not len(train):
            continue
        threshold = best_threshold(scores[train], same[train])
        accuracies.append(((scores[fold] >= threshold) == same[fold]).mean())
    return float(np.mean(accuracies)), float(np.std(accuracies))


# --- the evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeOutcome:
    """One probe against the gallery, before a threshold: who is nearest, how close, how clear."""

    genuine: bool  # the probe's identity is enrolled
    identity: str
    nearest: str | None  # None: no face in the probe
    score: float
    clear: bool  # passes the runner-up margin and the person's negatives
    photo: str = ""  # as written in the labels file
    runner_up: RunnerUp | None = None  # the next person, with their score
    face_px: float | None = None
    crowding: float = 0.0  # Match.crowding: the score must beat the threshold by this

    @property
    def decisive(self) -> float:
        """What the threshold is compared with: the score less the template's crowding."""
        return self.score - self.crowding

    def named(self, threshold: float) -> str | None:
        return self.nearest if self.clear and self.decisive >= threshold else None


def gallery_probes(
    images: list[LabelledImage],
    results: dict[str, ImageResult],
    margin: float,
    max_turn: float = float("inf"),
    crowded: float = float("inf"),
) -> tuple[list[ProbeOutcome], int]:
    """The daemon's situation on a labelled folder: several photos per person enrolled.

    Every identity with two or more photos is enrolled; each of its photos is probed in turn
    against a gallery of all other photos (leave one out). Identities with one photo, and
    `unknown`/`none` labels, are strangers probed against the whole gallery. Returns the
    outcomes and how many enrolled photos had no face (they are in no gallery).
    """
    by_identity: dict[str, list[LabelledImage]] = {}
    for img in images:
        if img.identity not in NOT_A_PERSON:
            by_identity.setdefault(img.identity, []).append(img)
    enrolled = [img for group in by_identity.values() if len(group) > 1 for img in group]
    strangers = [img for img in images if img.identity in ("unknown", "none")] + [
        group[0] for group in by_identity.values() if len(group) == 1
    ]
    usable = [img for img in enrolled if results[img.relative].embedding is not None]
    found = [r.embedding for r in results.values() if r.embedding is not None]
    width = len(found[0]) if found else 0
    matrix = np.array([results[i.relative].embedding for i in usable], dtype=np.float32).reshape(
        len(usable), width
    )
    labels = [img.identity for img in usable]
    # Thresholds of -2 let the matcher apply only the margin and turn rules; the threshold is
    # swept later.
    rule = Thresholds(-2.0, -2.0, margin=margin, max_turn=max_turn, crowded=crowded)
    outcomes = []
    for img in sorted(enrolled + strangers, key=lambda i: i.relative):
        genuine = img in enrolled
        embedding = results[img.relative].embedding
        if embedding is None:
            outcomes.append(
                ProbeOutcome(genuine, img.identity, None, NO_FACE_SCORE, False, img.relative)
            )
            continue
        keep = [i for i, other in enumerate(usable) if other is not img]
        matcher = Matcher(matrix[keep], [labels[i] for i in keep], rule)
        match = matcher.match(embedding, results[img.relative].turn)
        outcomes.append(
            ProbeOutcome(
                genuine,
                img.identity,
                match.nearest,
                match.score,
                match.person is not None,
                img.relative,
                match.runner_up,
                results[img.relative].face_px,
                match.crowding,
            )
        )
    return outcomes, len(enrolled) - len(usable)


def open_set_rates(outcomes: list[ProbeOutcome], threshold: float) -> dict[str, Any]:
    """CAR, misidentifications, misses and FPIR of the probes at one threshold."""
    genuine = [o for o in outcomes if o.genuine]
    strangers = [o for o in outcomes if not o.genuine]
    named = [(o, o.named(threshold)) for o in genuine]
    correct = sum(who == o.identity for o, who in named)
    wrong = sum(who is not None and who != o.identity for o, who in named)
    accepted = sum(o.named(threshold) is not None for o in strangers)
    return {
        "threshold": threshold,
        "correct_accept_rate": correct / len(genuine) if genuine else float("nan"),
        "misidentified": wrong,
        "missed": len(genuine) - correct - wrong,
        "strangers_accepted": accepted,
        "false_positive_identification_rate": accepted / len(strangers)
        if strangers
        else float("nan"),
    }


def probe_errors(outcomes: list[ProbeOutcome], threshold: float) -> list[dict[str, Any]]:
    """What a deployer fixing the gallery needs: every enrolled probe named as someone else and
    every stranger given a name at `threshold`, with the name, its score and the runner-up;
    highest score first (the most confident mistakes)."""
    errors = []
    for o in outcomes:
        named = o.named(threshold)
        if named is None or named == o.identity:
            continue
        errors.append(
            {
                "photo": o.photo,
                "kind": "misidentified" if o.genuine else "stranger_accepted",
                "identity": o.identity,
                "named": named,
                "score": round(o.score, 4),
                "runner_up": o.runner_up.person if o.runner_up else None,
                "runner_up_score": round(o.runner_up.score, 4) if o.runner_up else None,
            }
        )
    return sorted(errors, key=lambda e: (-e["score"], e["photo"]))


def format_probe_errors(name: str, errors: list[dict[str, Any]], limit: int = 10) -> list[str]:
    """The text report's lines for one model: the `limit` most confident, then how many more."""
    if not errors:
        return []
    lines = [f"{name}: {len(errors)} wrong name(s) at the operating point (photo, label -> name)"]
    for e in errors[:limit]:
        runner = (
            f", runner-up {e['runner_up']} {e['runner_up_score']:.3f}" if e["runner_up"] else ""
        )
        kind = "stranger" if e["kind"] == "stranger_accepted" else "misidentified"
        lines.append(
            f"  {kind:<13} {e['photo']}: {e['identity']} -> {e['named']} {e['score']:.3f}{runner}"
        )
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more (all of them in --json)")
    return lines


def threshold_at_fpir(outcomes: list[ProbeOutcome], fpir: float) -> float:
    """The lowest threshold at which at most `fpir` of the strangers are given a name."""
    strangers = [o.decisive for o in outcomes if not o.genuine and o.clear]
    total = sum(not o.genuine for o in outcomes)
    allowed = int(np.floor(fpir * total))
    ordered = sorted(strangers, reverse=True)
    if allowed >= len(ordered):
        return -1.0
    return float(np.nextafter(np.float32(ordered[allowed]), np.float32(2.0)))


def identification(
    images: list[LabelledImage], results: dict[str, ImageResult], thresholds: Thresholds
) -> dict[str, Any]:
    """Open-set identification at the shipped operating point and at FPIR 1 %."""
    outcomes, enrolled_without_face = gallery_probes(
        images, results, thresholds.margin, thresholds.max_turn, thresholds.crowded
    )
    genuine = [o for o in outcomes if o.genuine]
    report = open_set_rates(outcomes, thresholds.match)
    report.update(
        {
            "rank1": sum(o.nearest == o.identity for o in genuine) / len(genuine)
            if genuine
            else float("nan"),
            "margin": thresholds.margin,
            "at_fpir_1e-2": open_set_rates(outcomes, threshold_at_fpir(outcomes, 1e-2)),
            "enrolled_identities": len({o.identity for o in genuine}),
            "genuine_probes": len(genuine),
            "impostor_probes": len(outcomes) - len(genuine),
            "no_face": sum(o.nearest is None for o in outcomes),
            "enrolled_without_face": enrolled_without_face,
            "errors": probe_errors(outcomes, thresholds.match),
            "det": det_curve(outcomes),
            "bands": size_bands(outcomes, thresholds.match),
        }
    )
    return report


def det_curve(outcomes: list[ProbeOutcome]) -> list[tuple[float, float, float]]:
    """(threshold, FPIR, FNIR) at every score where a decision changes."""
    genuine = [o for o in outcomes if o.genuine]
    strangers = [o for o in outcomes if not o.genuine]
    if not genuine or not strangers:
        return []
    points = []
    for t in sorted({o.decisive for o in outcomes if o.nearest is not None}):
        fpir = sum(o.named(t) is not None for o in strangers) / len(strangers)
        fnir = sum(o.named(t) != o.identity for o in genuine) / len(genuine)
        points.append((float(t), fpir, fnir))
    return points


def all_pairs(
    images: list[LabelledImage], results: dict[str, ImageResult]
) -> tuple[list[Pair], int]:
    """Every pair of single-person photos; genuine near-duplicates (resizes, crops) left out."""
    people = sorted((i for i in images if i.identity not in NOT_A_PERSON), key=lambda i: i.relative)
    pairs, skipped = [], 0
    for i, a in enumerate(people):
        for b in people[i + 1 :]:
            same = a.identity == b.identity
            if same and is_near_duplicate(results[a.relative], results[b.relative]):
                skipped += 1
                continue
            pairs.append(Pair(a.relative, b.relative, same))
    return pairs, skipped


def verification(pairs: list[Pair], results: dict[str, ImageResult]) -> dict[str, Any]:
    scores, same, no_face = [], [], 0
    for pair in pairs:
        ea, eb = results[pair.a].embedding, results[pair.b].embedding
        if ea is None or eb is None:
            no_face += 1
            scores.append(NO_FACE_SCORE)
        else:
            scores.append(float(ea @ eb))
        same.append(pair.same)
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
    accuracy, accuracy_std = cross_validated_accuracy(s, y) if len(s) else (float("nan"), 0.0)
    return {
        "accuracy": accuracy,
        "accuracy_std": accuracy_std,
        "auc": auc(s[y], s[~y]),
        "tar_at_far_1e-2": tar_at_far(s[y], s[~y], 1e-2),
        "pairs": len(pairs),
        "genuine_pairs": int(y.sum()),
        "impostor_pairs": int((~y).sum()),
        "no_face": no_face,
        "scores": {"genuine": s[y].tolist(), "impostor": s[~y].tolist()},
    }


EmbedImage = Callable[[Path], ImageResult]


def evaluate_model(
    images: list[LabelledImage],
    embed_image: EmbedImage,
    thresholds: Thresholds,
    pairs: list[Pair] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    results: dict[str, ImageResult] = {}
    wanted = {img.relative: img.path for img in images}
    root = images[0].path.parent if images else Path(".")
    for pair in pairs or []:
        for rel in (pair.a, pair.b):
            wanted.setdefault(rel, root / rel)
    for n, (rel, path) in enumerate(sorted(wanted.items()), 1):
        results[rel] = embed_image(path)
        if progress:
            progress(n, len(wanted))
    near_duplicates = 0
    if pairs is None:
        pairs, near_duplicates = all_pairs(images, results)
    verify = verification(pairs, results)
    verify["near_duplicate_pairs_skipped"] = near_duplicates
    images_without_face = sorted(rel for rel, r in results.items() if r.embedding is None)
    return {
        "identification": identification(images, results, thresholds),
        "verification": verify,
        "images": len(results),
        "images_without_face": images_without_face,
    }


def format_eval_table(report: dict[str, Any]) -> str:
    lines = [
        "identification (every person with 2+ photos enrolled, each photo probed leave-one-out;"
        " single-photo people and unknowns are strangers)",
        f"{'model':<24} {'thresh':>6} {'CAR':>6} {'misid':>6} {'missed':>6} {'FPIR':>6}"
        f" {'strangers':>10} | {'@FPIR1%':>7} {'CAR':>6} {'misid':>6} | {'rank-1':>6}"
        f" {'genuine':>7} {'no face':>7}",
    ]
    for name, r in report["models"].items():
        i, low = r["identification"], r["identification"]["at_fpir_1e-2"]
        accepted = f"{i['strangers_accepted']}/{i['impostor_probes']}"
        lines.append(
            f"{name:<24} {i['threshold']:>6.2f} {i['correct_accept_rate']:>6.3f}"
            f" {i['misidentified']:>6} {i['missed']:>6}"
            f" {i['false_positive_identification_rate']:>6.3f} {accepted:>10} |"
            f" {low['threshold']:>7.3f} {low['correct_accept_rate']:>6.3f}"
            f" {low['misidentified']:>6} | {i['rank1']:>6.3f} {i['genuine_probes']:>7}"
            f" {i['no_face']:>7}"
        )
    lines += [
        "",
        "verification (all pairs of single-person photos; genuine near-duplicates left out)",
        f"{'model':<24} {'acc':>6} {'+-':>6} {'AUC':>6} {'TAR@1%':>7} {'pairs':>6}"
        f" {'gen':>4} {'imp':>5} {'no face':>8}",
    ]
    for name, r in report["models"].items():
        v = r["verification"]
        lines.append(
            f"{name:<24} {v['accuracy']:>6.3f} {v['accuracy_std']:>6.3f} {v['auc']:>6.3f}"
            f" {v['tar_at_far_1e-2']:>7.3f} {v['pairs']:>6} {v['genuine_pairs']:>4}"
            f" {v['impostor_pairs']:>5} {v['no_face']:>8}"
        )
    without = {
        n: r["images_without_face"] for n, r in report["models"].items() if r["images_without_face"]
    }
    for name, paths in without.items():
        lines.append(f"{name}: no face found in {len(paths)} image(s): {', '.join(paths)}")
    for name, r in report["models"].items():
        lines += format_probe_errors(name, r["identification"]["errors"])
    return "\n".join(lines)


def plot_det(curves: dict[str, list[tuple[float, float, float]]], out: Path) -> None:
    """Open-set DET curves: missed or misnamed enrolled probes against strangers named."""
    series = {
        name: [(max(fpir, 1e-3), fnir) for _, fpir, fnir in points]
        for name, points in curves.items()
        if points
    }
    line_chart(
        series, Axis("FPIR", 1e-3, 1.0, log=True), Axis("FNIR", 0.0, 1.0), out, "DET (gallery)"
    )


def plot_roc(curves: dict[str, dict[str, Any]], out: Path) -> None:
    """ROC curves: TAR against FAR (log axis), one line per model."""
    series = {}
    for name, scores in curves.items():
        gen, imp = np.asarray(scores["genuine"]), np.asarray(scores["impostor"])
        if len(gen) and len(imp):
            thresholds = np.unique(np.concatenate([gen, imp]))[::-1]
            series[name] = [
                (float((imp >= t).mean()), float((gen >= t).mean())) for t in thresholds
            ]
    line_chart(series, Axis("FAR", 1e-3, 1.0, log=True), Axis("TAR", 0.0, 1.0), out, "ROC")


# --- enrol from one part of a folder, probe with another --------------------------------------


def path_selector(patterns: str) -> Callable[[LabelledImage], bool]:
    """Photos whose relative path matches any of the comma-separated glob patterns."""
    globs = [p.strip() for p in patterns.split(",") if p.strip()]
    if not globs:
        raise EdgefaceError(f"expected comma-separated path patterns, got {patterns!r}")
    return lambda image: any(fnmatch.fnmatchcase(image.relative, g) for g in globs)


def split_probes(
    images: list[LabelledImage],
    results: dict[str, ImageResult],
    enrol: Callable[[LabelledImage], bool],
    probe: Callable[[LabelledImage], bool],
    rule: Thresholds,
) -> tuple[list[ProbeOutcome], int]:
    """The gallery is the photos `enrol` selects; each photo `probe` selects is matched against it.

    A probe whose identity has an enrolled photo with a face is genuine, any other a stranger.
    A photo selected by both is left out of the gallery while it is probed (leave one out), so
    `--enrol 'cctv*' --probe 'cctv*'` asks whether camera frames name each other right.
    Returns the outcomes (each with its face size) and how many enrolled photos had no face.
    """
    people = [i for i in images if i.identity not in NOT_A_PERSON]
    gallery = [i for i in people if enrol(i) and results[i.relative].embedding is not None]
    without_face = sum(1 for i in people if enrol(i)) - len(gallery)
    enrolled = {i.identity for i in gallery}
    outcomes = []
    for img in sorted((i for i in images if probe(i)), key=lambda i: i.relative):
        result = results[img.relative]
        genuine = img.identity in enrolled
        if result.embedding is None:
            outcomes.append(
                ProbeOutcome(genuine, img.identity, None, NO_FACE_SCORE, False, img.relative)
            )
            continue
        others = [g for g in gallery if g is not img]
        matrix = np.array([results[g.relative].embedding for g in others], dtype=np.float32)
        matcher = Matcher(
            matrix.reshape(len(others), len(result.embedding)), [g.identity for g in others], rule
        )
        match = matcher.match(result.embedding, result.turn)
        outcomes.append(
            ProbeOutcome(
                genuine=img.identity in {g.identity for g in others},
                identity=img.identity,
                nearest=match.nearest,
                score=match.score,
                clear=match.person is not None,
                photo=img.relative,
                runner_up=match.runner_up,
                face_px=result.face_px,
                crowding=match.crowding,
            )
        )
    return outcomes, without_face


# Face sizes (shorter box side, px) the report is broken down by: camera faces are 40-110 px.
SIZE_BANDS = (0.0, 48.0, 80.0, 128.0, 256.0)


def size_bands(outcomes: list[ProbeOutcome], threshold: float) -> list[dict[str, Any]]:
    """Correct, misidentified, missed and strangers named per face-size band (no-face apart)."""
    edges = [*SIZE_BANDS, float("inf")]
    rows = []
    for low, high in itertools.pairwise(edges):
        band = [o for o in outcomes if o.face_px is not None and low <= o.face_px < high]
        if band:
            rates = open_set_rates(band, threshold)
            genuine = sum(o.genuine for o in band)
            rows.append(
                {
                    "band": f"{low:.0f}-{high:.0f}px" if high != float("inf") else f"{low:.0f}px+",
                    "genuine": genuine,
                    "correct": round(rates["correct_accept_rate"] * genuine) if genuine else 0,
                    "misidentified": rates["misidentified"],
                    "missed": rates["missed"],
                    "strangers": len(band) - genuine,
                    "strangers_accepted": rates["strangers_accepted"],
                }
            )
    no_face = [o for o in outcomes if o.nearest is None]
    if no_face:
        rows.append(
            {
                "band": "no face",
                "genuine": sum(o.genuine for o in no_face),
                "correct": 0,
                "misidentified": 0,
                "missed": sum(o.genuine for o in no_face),
                "strangers": sum(not o.genuine for o in no_face),
                "strangers_accepted": 0,
            }
        )
    return rows


def split_identification(
    images: list[LabelledImage],
    results: dict[str, ImageResult],
    thresholds: Thresholds,
    enrol: Callable[[LabelledImage], bool],
    probe: Callable[[LabelledImage], bool],
) -> dict[str, Any]:
    """Open-set identification with the gallery and the probes chosen by path, per size band."""
    # Thresholds of -2 let the matcher apply only the margin and turn rules; `match` is applied
    # by open_set_rates.
    rule = dataclasses.replace(thresholds, match=-2.0, unknown=-2.0)
    outcomes, without_face = split_probes(images, results, enrol, probe, rule)
    report = open_set_rates(outcomes, thresholds.match)
    report.update(
        {
            "margin": thresholds.margin,
            "genuine_probes": sum(o.genuine for o in outcomes),
            "impostor_probes": sum(not o.genuine for o in outcomes),
            "no_face": sum(o.nearest is None for o in outcomes),
            "enrolled_without_face": without_face,
            "errors": probe_errors(outcomes, thresholds.match),
            "bands": size_bands(outcomes, thresholds.match),
        }
    )
    return report


def format_split_table(report: dict[str, Any]) -> str:
    """The enrol/probe split per model: totals, then per face-size band."""
    lines = [
        f"enrolled: {report['enrol']}; probed: {report['probe']}"
        " (a photo in both is left out of the gallery while probed)",
        f"{'model':<24} {'band':>11} {'genuine':>7} {'correct':>7} {'misid':>6} {'missed':>6}"
        f" {'strangers':>9} {'named':>6}",
    ]
    for name, r in report["models"].items():
        s = r["split"]
        correct = (
            round(s["correct_accept_rate"] * s["genuine_probes"]) if s["genuine_probes"] else 0
        )
        lines.append(
            f"{name:<24} {'all':>11} {s['genuine_probes']:>7} {correct:>7}"
            f" {s['misidentified']:>6} {s['missed']:>6} {s['impostor_probes']:>9}"
            f" {s['strangers_accepted']:>6}   (threshold {s['threshold']:.2f},"
            f" margin {s['margin']:.2f})"
        )
        for b in s["bands"]:
            lines.append(
                f"{'':<24} {b['band']:>11} {b['genuine']:>7} {b['correct']:>7}"
                f" {b['misidentified']:>6} {b['missed']:>6} {b['strangers']:>9}"
                f" {b['strangers_accepted']:>6}"
            )
    for name, r in report["models"].items():
        lines += format_probe_errors(name, r["split"]["errors"])
    return "\n".join(lines)
