"""Accuracy on a labelled folder: identification (enrol one photo, probe the rest) and verification.

Owns: reading LABELS.csv / PAIRS.csv, embedding each photo once per model, and the metrics
(rank-1, correct-accept and false-positive identification rates at the configured threshold;
10-fold cross-validated verification accuracy, AUC, TAR at FAR 1e-2). Photos where no face is
found are counted in every table, never dropped silently.
Never: decides thresholds for the daemon (it reports them), or writes outside the given outputs.
"""

from __future__ import annotations

import csv
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
from edgeface.types import Embedding, ImageBGR

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


def identification(
    images: list[LabelledImage], results: dict[str, ImageResult], thresholds: Thresholds
) -> dict[str, Any]:
    by_identity: dict[str, list[LabelledImage]] = {}
    for img in images:
        if img.identity not in NOT_A_PERSON:
            by_identity.setdefault(img.identity, []).append(img)
    enrolled: list[tuple[str, Embedding]] = []
    genuine: list[LabelledImage] = []
    impostors = [img for img in images if img.identity in ("unknown", "none")]
    no_face = 0
    for identity, group in sorted(by_identity.items()):
        group.sort(key=lambda i: i.relative)
        if len(group) == 1:
            impostors.append(group[0])
            continue
        first = results[group[0].relative].embedding
        if first is None:
            no_face += 1
            # the identity cannot be enrolled: its probes can never be correct
        else:
            enrolled.append((identity, first))
        genuine.extend(group[1:])
    matcher = Matcher(
        np.array([e for _, e in enrolled], dtype=np.float32).reshape(len(enrolled), -1),
        [p for p, _ in enrolled],
        thresholds,
    )
    rank1 = accepted = false_positive = 0
    for img in genuine:
        emb = results[img.relative].embedding
        if emb is None:
            no_face += 1
            continue
        match = matcher.match(emb)
        rank1 += match.nearest == img.identity
        accepted += match.person == img.identity
    for img in impostors:
        emb = results[img.relative].embedding
        if emb is None:
            no_face += 1
            continue
        false_positive += matcher.match(emb).person is not None
    return {
        "rank1": rank1 / len(genuine) if genuine else float("nan"),
        "correct_accept_rate": accepted / len(genuine) if genuine else float("nan"),
        "false_positive_identification_rate": (
            false_positive / len(impostors) if impostors else float("nan")
        ),
        "threshold": thresholds.match,
        "enrolled_identities": len(enrolled),
        "genuine_probes": len(genuine),
        "impostor_probes": len(impostors),
        "no_face": no_face,
    }


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
        "identification (first photo per identity enrolled, the rest probed)",
        f"{'model':<18} {'rank-1':>7} {'CAR':>7} {'FPIR':>7} {'thresh':>7} {'genuine':>8}"
        f" {'impostor':>9} {'no face':>8}",
    ]
    for name, r in report["models"].items():
        i = r["identification"]
        lines.append(
            f"{name:<18} {i['rank1']:>7.3f} {i['correct_accept_rate']:>7.3f}"
            f" {i['false_positive_identification_rate']:>7.3f} {i['threshold']:>7.2f}"
            f" {i['genuine_probes']:>8} {i['impostor_probes']:>9} {i['no_face']:>8}"
        )
    lines += [
        "",
        "verification (all pairs of single-person photos; genuine near-duplicates left out)",
        f"{'model':<18} {'acc':>6} {'+-':>6} {'AUC':>6} {'TAR@1%':>7} {'pairs':>6}"
        f" {'gen':>4} {'imp':>5} {'no face':>8}",
    ]
    for name, r in report["models"].items():
        v = r["verification"]
        lines.append(
            f"{name:<18} {v['accuracy']:>6.3f} {v['accuracy_std']:>6.3f} {v['auc']:>6.3f}"
            f" {v['tar_at_far_1e-2']:>7.3f} {v['pairs']:>6} {v['genuine_pairs']:>4}"
            f" {v['impostor_pairs']:>5} {v['no_face']:>8}"
        )
    without = {
        n: r["images_without_face"] for n, r in report["models"].items() if r["images_without_face"]
    }
    for name, paths in without.items():
        lines.append(f"{name}: no face found in {len(paths)} image(s): {', '.join(paths)}")
    return "\n".join(lines)


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
