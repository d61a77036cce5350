"""Bad input to the real `edgeface` command (issue 15): one line on stderr, exit 2, no hang.

Each case runs the installed command on real files: config files the daemon would refuse,
`eval` on a folder or a wrong root, FIFOs where a photo or CSV is expected, names and gallery
paths `enroll` must refuse, an empty gallery, and per-file errors. stderr must hold exactly the
error line: no traceback and no line from the native runtime before it.
"""

from __future__ import annotations

import os
import subprocess
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_support import edgeface

from edgeface.samples import enrollment_photos, packaged_faces


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The single stderr line of a refused command, checked to name each fragment."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgeface: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for n, image in enumerate(enrollment_photos(packaged_faces().person_photo)):
        paths.append(folder / f"eileen{n}.jpg")
        cv2.imwrite(str(paths[-1]), image)
    return paths


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\ngallery: {{path: {tmp_path / 'g'}}}\n")
    return path


def fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


# --- config check runs what the daemon checks (#10, #11) -------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("recognition: {match_threshold: .nan}", ["recognition.match_threshold", "nan"]),
        ("gallery: {settle_seconds: .nan}", ["gallery.settle_seconds", "nan"]),
        (
            "mqtt: {tls: {enabled: true, ca_file: missing-ca.pem}}",
            ["mqtt.tls.ca_file", "missing-ca.pem: no such file"],
        ),
        (
            "mqtt: {username: u, password_file: missing.pw}",
            ["mqtt.password_file", "missing.pw: no such file"],
        ),
        ("mqtt: {username: u, password_file: .}", ["mqtt.password_file", "is a directory"]),
        (
            "mqtt: {username: u, password_env: EDGEFACE_TEST_NEVER_SET}",
            ["mqtt.password_env", "EDGEFACE_TEST_NEVER_SET is not set"],
        ),
        ("models: {embedder: facenet-nonesuch}", ["models.embedder", "not in the manifest"]),
        ("models: {detector: missing.tflite}", ["models.detector", "missing.tflite: not found"]),
        ("models: {detector: missing.onnx}", ["models.detector", "missing.onnx: not found"]),
    ],
)
def test_config_check_refuses_what_the_daemon_refuses(tmp_path, text, fragments):
    config = tmp_path / "c.yaml"
    config.write_text(text + "\n")
    env = {k: v for k, v in os.environ.items() if k != "EDGEFACE_TEST_NEVER_SET"}
    one_error_line(edgeface("config", "check", config, env=env), f"{config}: ", *fragments)


def test_config_check_accepts_a_model_not_built_yet_and_says_so(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"models: {{embedder: facenet-fp32, cache_dir: {tmp_path / 'empty'}}}\n")
    result = edgeface("config", "check", config)
    assert result.returncode == 0, result.stderr
    assert "models.embedder: model 'facenet-fp32': not built yet" in result.stdout
    assert result.stdout.rstrip().endswith(f"{config}: ok")


# --- eval on bad input (#12) ----------------------------------------------------------------


def _labelled_walls(tmp_path: Path) -> Path:
    """Two labelled photos of a plain wall: files that decode, with no face in them."""
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.full((200, 200, 3), 90, np.uint8))
    labels = tmp_path / "labels.csv"
    labels.write_text("path,identity\na.png,someone\nb.png,someone\n")
    return labels


def test_eval_labels_a_directory(tmp_path):
    one_error_line(edgeface("eval", "--labels", tmp_path, "--root", tmp_path), "is a directory")


def test_eval_wrong_root(tmp_path):
    labels = _labelled_walls(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    one_error_line(
        edgeface("eval", "--labels", labels, "--root", elsewhere), "none of its 2 photos"
    )


def test_eval_no_usable_photo(tmp_path):
    labels = _labelled_walls(tmp_path)
    one_error_line(edgeface("eval", "--labels", labels, "--root", tmp_path), "no face found in any")


# --- FIFOs are refused before they are opened (#13) -----------------------------------------


def test_identify_refuses_a_fifo(tmp_path, config, photos):
    (tmp_path / "g").mkdir()
    pipe = fifo(tmp_path, "pipe.jpg")
    one_error_line(
        edgeface("identify", pipe, "--config", config), f"{pipe}: is a FIFO, expected an image"
    )


def test_enroll_refuses_a_fifo(tmp_path, config):
    pipe = fifo(tmp_path, "pipe.jpg")
    result = edgeface("enroll", "Eileen", pipe, "--config", config)
    assert result.returncode == 2, result.stderr
    assert "refused" in result.stdout and "is a FIFO" in result.stdout
    assert not list((tmp_path / "g" / "Eileen").glob("*"))


def test_eval_refuses_a_fifo_as_labels_and_as_a_photo(tmp_path):
    one_error_line(
        edgeface("eval", "--labels", fifo(tmp_path, "fifo.csv"), "--root", tmp_path),
        "is a FIFO, expected a CSV file",
    )
    labels = _labelled_walls(tmp_path)
    (tmp_path / "a.png").unlink()
    fifo(tmp_path, "a.png")
    # the FIFO is refused by name (logged), the wall has no face: the run ends with one error
    result = edgeface("eval", "--labels", labels, "--root", tmp_path)
    assert result.returncode == 2
    assert "a.png: is a FIFO" in result.stderr and "Traceback" not in result.stderr


def test_a_fifo_as_config_file(tmp_path):
    one_error_line(
        edgeface("config", "check", fifo(tmp_path, "c.yaml")), "is a FIFO, expected a YAML"
    )


# --- enroll: names and gallery paths (#15) --------------------------------------------------


@pytest.mark.parametrize("name", ["Eve\nAdmin", "Eve\tAdmin", "Eve\x1b[31m", "Eve\u2028Admin"])
def test_enroll_refuses_control_characters_in_a_name(tmp_path, config, photos, name):
    one_error_line(edgeface("enroll", name, photos[0], "--config", config), "control characters")
    assert not (tmp_path / "g").exists()


def test_enroll_refuses_a_gallery_whose_parent_does_not_exist(tmp_path, config, photos):
    gallery = tmp_path / "no" / "such" / "g"
    one_error_line(
        edgeface("enroll", "Eileen", photos[0], "--gallery", gallery, "--config", config),
        f"gallery {gallery}: no such folder",
    )
    assert not (tmp_path / "no").exists()


def test_enroll_creates_the_gallery_itself(tmp_path, config, photos):
    result = edgeface("enroll", "Eileen", photos[0], "--config", config)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "g" / "Eileen").iterdir())) == 1


def test_nfc_and_nfd_spellings_are_one_person(tmp_path, config, photos):
    # A folder synced from macOS is spelled NFD; a name typed on Linux is NFC.
    nfd, nfc = unicodedata.normalize("NFD", "José"), unicodedata.normalize("NFC", "José")
    assert nfd != nfc
    (tmp_path / "g" / nfd).mkdir(parents=True)
    result = edgeface("enroll", nfc, photos[0], "--config", config)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "g").iterdir()] == [nfd]
    listing = edgeface("gallery", "list", "--config", config)
    assert "1 people" in listing.stdout, listing.stdout
    found = edgeface("identify", photos[1], "--config", config)
    assert f": {nfc} similarity" in found.stdout, found.stdout


# --- identify: empty gallery, per-file errors, nothing from the runtime (minor) ---------------


def test_identify_against_an_empty_gallery_says_so(tmp_path, config, photos):
    (tmp_path / "g").mkdir()
    result = edgeface("identify", photos[0], "--config", config)
    assert result.returncode == 0, result.stderr
    assert "no one is enrolled" in result.stdout and "None" not in result.stdout


def test_identify_per_file_error_is_exit_2_and_the_only_stderr_line(tmp_path, config, photos):
    (tmp_path / "g").mkdir()
    missing = tmp_path / "missing.jpg"
    result = edgeface("identify", missing, photos[0], "--config", config)
    one_error_line(result, f"{missing}: no such file")
    assert "no one is enrolled" in result.stdout  # the good photo was still done


def test_enroll_refuses_a_name_longer_than_a_folder_name(tmp_path, config, photos):
    # 150 two-byte characters: 300 bytes, where Linux file systems allow 255 in a name.
    one_error_line(
        edgeface("enroll", "é" * 150, photos[0], "--config", config), "300 bytes long, at most 255"
    )
    assert not (tmp_path / "g").exists()


def test_eval_enrol_needs_probe_and_patterns_that_match(tmp_path):
    labels = _labelled_walls(tmp_path)
    base = ("eval", "--labels", labels, "--root", tmp_path)
    one_error_line(edgeface(*base, "--enrol", "a.png"), "--enrol and --probe go together")
    one_error_line(
        edgeface(*base, "--enrol", "a.png", "--probe", "cctv_*"),
        "--probe cctv_*: matches no path in",
    )
