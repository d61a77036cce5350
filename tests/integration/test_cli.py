"""The command line as a user runs it: real models, real image files, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeface.samples import enrollment_photos, packaged_faces


def edgeface(
    *args: str, cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeface", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def test_identify_names_everyone_in_the_shared_test_photos(shared_faces, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    tests = sorted(str(p) for p in (shared_faces / "knn_examples" / "test").iterdir())
    result = edgeface(
        "identify",
        *tests,
        "--gallery",
        str(shared_faces / "knn_examples" / "train"),
        "--config",
        str(config),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    found = {
        Path(r["image"]).name: {f["person"] for f in r["faces"]} for r in json.loads(result.stdout)
    }
    assert found["alex_lacamoire1.jpg"] == {"alex_lacamoire"}
    assert found["johnsnow_test1.jpg"] == {"kit_harington"}
    assert found["obama1.jpg"] == {"obama"}
    assert {"kit_harington", "rose_leslie"} <= found["kit_with_rose.jpg"]
    assert {"obama", "biden"} <= found["obama_and_biden.jpg"]


def test_eval_json_has_the_documented_keys(shared_faces, tmp_path):
    out = tmp_path / "eval.json"
    plot = tmp_path / "roc.png"
    result = edgeface(
        "eval",
        "--labels",
        str(shared_faces / "labels.csv"),
        "--root",
        str(shared_faces),
        "--model",
        "facenet-dynamic",
        "--json",
        str(out),
        "--plot",
        str(plot),
    )
    assert result.returncode == 0, result.stderr
    assert "rank-1" in result.stdout and "AUC" in result.stdout
    report = json.loads(out.read_text())["models"]["facenet-dynamic"]
    ident, verif = report["identification"], report["verification"]
    for key in (
        "rank1",
        "correct_accept_rate",
        "false_positive_identification_rate",
        "threshold",
        "genuine_probes",
        "impostor_probes",
        "no_face",
    ):
        assert key in ident
    for key in ("accuracy", "accuracy_std", "auc", "tar_at_far_1e-2", "pairs", "no_face"):
        assert key in verif
    assert ident["rank1"] >= 0.9 and verif["auc"] >= 0.95 and ident["no_face"] == 0
    assert cv2.imread(str(plot)) is not None


def test_enroll_list_check_identify_explain_without_shared_data(tmp_path):
    faces = packaged_faces()
    photos = []
    for n, image in enumerate(enrollment_photos(faces.person_photo)):
        photos.append(tmp_path / f"in{n}.jpg")
        cv2.imwrite(str(photos[-1]), image)
    not_a_face = tmp_path / "wall.png"
    cv2.imwrite(str(not_a_face), faces.person_photo[:40, :40] * 0 + 90)
    gallery = tmp_path / "gallery"
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\ngallery: {{path: {gallery}}}\n")
    result = edgeface(
        "enroll", "Eileen", *map(str, photos), str(not_a_face), "--config", str(config)
    )
    assert result.returncode == 2, "one photo was refused"
    assert result.stdout.count("enrolled") == 3 and "refused  " in result.stdout
    assert len(list((gallery / "Eileen").iterdir())) == 3
    listing = edgeface("gallery", "list", "--config", str(config))
    assert listing.returncode == 0 and "Eileen" in listing.stdout
    check = edgeface("gallery", "check", "--config", str(config))
    assert check.returncode == 0 and "leave-one-out" in check.stdout
    stranger = tmp_path / "stranger.png"
    canvas = np.full((360, 480, 3), 110, np.uint8)  # the LFW crop is tight: give it a background
    canvas[100:240, 170:310] = faces.strangers[0]
    cv2.imwrite(str(stranger), canvas)
    explain = edgeface(
        "identify",
        "--explain",
        str(photos[0]),
        str(stranger),
        str(not_a_face),
        "--config",
        str(config),
    )
    assert explain.returncode == 0, explain.stderr
    assert "recognised as Eileen" in explain.stdout
    assert "unknown: nearest Eileen" in explain.stdout
    assert "no face found" in explain.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["identify", "/nonexistent/x.jpg", "--gallery", "/nonexistent"],
            "gallery /nonexistent: no such folder",
        ),
        (["config", "check", "/nonexistent.yaml"], "config file not found"),
        (["eval", "--labels", "/nonexistent.csv", "--root", "/"], "/nonexistent.csv: no such file"),
    ],
)
def test_user_errors_are_one_line(args, message):
    result = edgeface(*args)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_identify_reports_bad_images_and_goes_on(tmp_path):
    gallery = tmp_path / "g" / "someone"
    gallery.mkdir(parents=True)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), packaged_faces().person_photo)
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    result = edgeface(
        "identify", str(bad), str(good), "--gallery", str(tmp_path / "g"), "--config", str(config)
    )
    assert result.returncode == 2
    assert "bad.jpg: not a readable image" in result.stderr
    assert "good.jpg: a face, not compared: no one is enrolled" in result.stdout


def test_eval_lists_each_wrong_name_with_its_photo_score_and_runner_up(tmp_path, lfw_faces):
    """Strangers named at a threshold that accepts everyone: each appears in --json, and the
    text report shows the first ten and how many more."""
    faces = packaged_faces()
    rows = ["path,identity"]
    for n, image in enumerate(enrollment_photos(faces.person_photo)):
        cv2.imwrite(str(tmp_path / f"eileen{n}.jpg"), image)
        rows.append(f"eileen{n}.jpg,eileen")
    for n, face in enumerate(lfw_faces[:20]):
        canvas = np.full((400, 400, 3), 110, np.uint8)  # the LFW crops are tight
        canvas[120:280, 120:280] = face
        cv2.imwrite(str(tmp_path / f"s{n:02d}.png"), canvas)
        rows.append(f"s{n:02d}.png,unknown")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text("recognition: {match_threshold: -1.0, unknown_threshold: -1.0}\n")
    out = tmp_path / "eval.json"
    result = edgeface(
        "eval", "--labels", str(labels), "--root", str(tmp_path), "--config", str(config),
        "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ((model, report),) = json.loads(out.read_text())["models"].items()
    ident = report["identification"]
    errors = ident["errors"]
    assert len(errors) == ident["misidentified"] + ident["strangers_accepted"]
    assert len(errors) > 10, ident  # every stranger with a face is named at -1
    for error in errors:
        assert error["kind"] == "stranger_accepted" and error["identity"] == "unknown"
        assert error["named"] == "eileen" and error["photo"].startswith("s")
        assert error["runner_up"] is None  # one person enrolled
    assert [e["score"] for e in errors] == sorted((e["score"] for e in errors), reverse=True)
    assert f"{model}: {len(errors)} wrong name(s)" in result.stdout
    listed = [line for line in result.stdout.splitlines() if line.startswith("  stranger ")]
    assert len(listed) == 10
    assert f"{errors[0]['photo']}: unknown -> eileen {errors[0]['score']:.3f}" in listed[0]
    assert f"... and {len(errors) - 10} more (all of them in --json)" in result.stdout


def test_eval_enrols_one_part_of_a_folder_and_probes_another(tmp_path):
    """Studio-like photos enrolled, other views probed: the split table, per face-size band."""
    faces = packaged_faces()
    rows = ["path,identity"]
    for n, photo in enumerate(enrollment_photos(faces.person_photo)):
        cv2.imwrite(str(tmp_path / f"studio_{n}.png"), photo)
        rows.append(f"studio_{n}.png,{faces.person}")
    cv2.imwrite(str(tmp_path / "camera_0.png"), cv2.flip(faces.person_photo, 1))
    rows.append(f"camera_0.png,{faces.person}")
    for n, stranger in enumerate(faces.strangers[:3]):
        cv2.imwrite(str(tmp_path / f"camera_s{n}.png"), stranger)
        rows.append(f"camera_s{n}.png,unknown")
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    out = tmp_path / "eval.json"
    result = edgeface(
        "eval",
        "--labels",
        str(labels),
        "--root",
        str(tmp_path),
        "--enrol",
        "studio_*",
        "--probe",
        "camera_*",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "enrolled: studio_*; probed: camera_*" in result.stdout
    split = next(iter(json.loads(out.read_text())["models"].values()))["split"]
    assert (split["genuine_probes"], split["impostor_probes"]) == (1, 3)
    assert split["correct_accept_rate"] == 1.0 and split["misidentified"] == 0
    assert split["strangers_accepted"] == 0
    assert sum(b["genuine"] + b["strangers"] for b in split["bands"]) == 4


def test_a_face_turned_beyond_max_turn_is_not_named_and_identify_says_why(tmp_path):
    faces = packaged_faces()
    person = tmp_path / "g" / faces.person
    person.mkdir(parents=True)
    for n, photo in enumerate(enrollment_photos(faces.person_photo)):
        cv2.imwrite(str(person / f"{n}.png"), photo)
    probe = tmp_path / "probe.png"
    cv2.imwrite(str(probe), cv2.flip(faces.person_photo, 1))
    answers = {}
    for max_turn in (1.0, 0.0):  # the default, and every real face counting as turned
        config = tmp_path / f"c{max_turn}.yaml"
        config.write_text(
            f"state_dir: {tmp_path / 'state'}\nrecognition: {{max_turn: {max_turn}}}\n"
        )
        args = ("identify", str(probe), "--gallery", str(tmp_path / "g"), "--config", str(config))
        result = edgeface(*args, "--explain")
        assert result.returncode == 0, result.stderr
        answers[max_turn] = result.stdout
    assert f"recognised as {faces.person}" in answers[1.0]
    assert "the head is turned" in answers[0.0] and "recognised as" not in answers[0.0]
