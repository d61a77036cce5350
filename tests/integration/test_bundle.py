"""Model bundles through the real runtime: exported here, imported where TensorFlow cannot load.

The import runs in a subprocess in which `import tensorflow` and `import skimage` raise (as on a
device venv), into an empty cache; the installed models then identify a face like the originals.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeface.models import default_cache_dir, load_manifest, model_file
from edgeface.models.bundle import SUMS, default_export_models, export_bundle

# What a default configuration needs, and the float embedder a 32-bit runtime falls back to.
MODELS = default_export_models(load_manifest())
EMBEDDER = load_manifest().defaults["embedder"]
# What a device venv lacks: the wrapper makes both imports fail before the CLI runs.
DEVICE_PYTHON = (
    "import sys\n"
    "sys.modules['tensorflow'] = None\n"
    "sys.modules['skimage'] = None\n"
    "try:\n"
    "    import tensorflow\n"
    "except ImportError:\n"
    "    pass\n"
    "else:\n"
    "    raise SystemExit('tensorflow is importable')\n"
    "from edgeface.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def run_on_host(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The CLI where TensorFlow and scikit-image are importable (a build host)."""
    return subprocess.run(
        [sys.executable, "-m", "edgeface", *args], capture_output=True, text=True, timeout=timeout
    )


def run_on_device(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if cache is not None:
        env["EDGEFACE_MODEL_CACHE"] = str(cache)
    return subprocess.run(
        [sys.executable, "-c", DEVICE_PYTHON, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    manifest = load_manifest()
    for name in MODELS:
        if not model_file(manifest.get(name)).is_file():
            pytest.skip(f"{name} not built (edgeface models build)")
    pytest.importorskip("skimage", reason="export needs scikit-image (build extra)")
    out = tmp_path_factory.mktemp("bundle") / "models.tar"
    export_bundle(out)
    return out


def rewrite(bundle: Path, out: Path, changes: dict[str, bytes], resum: bool) -> Path:
    """A copy of the bundle with members replaced; SHA256SUMS recomputed if `resum`."""
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    members.update(changes)
    if resum:
        members[SUMS] = "".join(
            f"{hashlib.sha256(data).hexdigest()}  {name}\n"
            for name, data in sorted(members.items())
            if name != SUMS
        ).encode()
    with tarfile.open(out, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def member_name(bundle: Path, model: str) -> str:
    with tarfile.open(bundle) as tar:
        return next(
            n for n in tar.getnames() if n.startswith(f"models/{model}-") and n.endswith(".tflite")
        )


def test_import_without_tensorflow_installs_models_that_identify_like_the_originals(
    bundle: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "empty-cache"
    result = run_on_device("models", "import", str(bundle), "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for name in MODELS:
        assert f"{name}: installed" in result.stdout
    assert os.stat(cache).st_mode & 0o777 == 0o700
    installed = [p for p in cache.rglob("*") if not p.name.startswith(".")]
    assert {p.name for p in installed if p.is_dir()} == {
        model_file(load_manifest().get(n)).parent.name for n in MODELS
    }
    assert not list(cache.glob(".import-*")), "the staging directory is removed"
    for path in installed:
        assert os.stat(path).st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path

    # The installed models name a face exactly as the originals do (same bytes, same runtime).
    skdata = pytest.importorskip("skimage.data")
    photo = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    (tmp_path / "gallery" / "Eileen").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "gallery" / "Eileen" / "1.png"), photo)
    probe = tmp_path / "probe.png"
    cv2.imwrite(str(probe), np.ascontiguousarray(photo[:, ::-1]))
    (tmp_path / "cfg.yaml").write_text(f"state_dir: {tmp_path / 'state'}\n")
    args = ["identify", "--json", "--config", str(tmp_path / "cfg.yaml")]
    args += ["--gallery", str(tmp_path / "gallery"), str(probe)]
    device = run_on_device(*args, cache=cache)
    assert device.returncode == 0, device.stderr
    (tmp_path / "state").rename(tmp_path / "state-device")
    host = subprocess.run(
        [sys.executable, "-m", "edgeface", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "EDGEFACE_MODEL_CACHE": str(default_cache_dir())},
        timeout=300,
    )
    assert host.returncode == 0, host.stderr
    device_face = json.loads(device.stdout)[0]["faces"][0]
    assert device_face["person"] == "Eileen"
    assert device_face == json.loads(host.stdout)[0]["faces"][0]


def test_models_verify_in_a_device_venv_says_what_needs_the_build_extra(
    bundle: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    assert run_on_device("models", "import", str(bundle), "--cache-dir", str(cache)).returncode == 0
    result = run_on_device("models", "verify", "--cache-dir", str(cache))
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[build] extra" in result.stdout
    for name in MODELS:
        row = next(line for line in result.stdout.splitlines() if line.startswith(name + " "))
        assert " yes " in row, row  # loads in the runtime


def test_a_tampered_member_is_refused_in_one_line_and_nothing_is_installed(
    bundle: Path, tmp_path: Path
) -> None:
    name = member_name(bundle, EMBEDDER)
    with tarfile.open(bundle) as tar:
        data = bytearray(tar.extractfile(name).read())  # type: ignore[union-attr]
    data[len(data) // 2] ^= 0xFF
    tampered = rewrite(bundle, tmp_path / "tampered.tar", {name: bytes(data)}, resum=False)
    cache = tmp_path / "cache"
    result = run_on_device("models", "import", str(tampered), "--cache-dir", str(cache))
    assert result.returncode == 2  # a refused input, as every CLI user error
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"{name} does not match its checksum" in result.stderr
    assert not [p for p in cache.iterdir()], "nothing installed"


def test_a_different_model_under_the_same_name_fails_its_golden_embedding(
    bundle: Path, tmp_path: Path
) -> None:
    # Consistent checksums (recomputed), another network's file under the model's name: only
    # the golden embedding catches it.
    other = next(n for n in ("facenet-msceleb-dynamic", "sface-dynamic") if n != EMBEDDER)
    swapped = model_file(load_manifest().get(other))
    if not swapped.is_file():
        pytest.skip(f"{other} not built")
    name = member_name(bundle, EMBEDDER)
    bad = rewrite(bundle, tmp_path / "swapped.tar", {name: swapped.read_bytes()}, resum=True)
    cache = tmp_path / "cache"
    result = run_on_device("models", "import", str(bad), "--cache-dir", str(cache))
    assert result.returncode == 2  # a refused input, as every CLI user error
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"{EMBEDDER} does not reproduce its golden output" in result.stderr
    assert not [p for p in cache.iterdir()], "nothing installed"


def test_a_pinned_bundle_sha256_is_enforced(bundle: Path, tmp_path: Path) -> None:
    result = run_on_device(
        "models", "import", str(bundle), "--cache-dir", str(tmp_path / "c"), "--sha256", "0" * 64
    )
    assert result.returncode == 2  # a refused input, as every CLI user error
    assert f"not the expected {'0' * 64}" in result.stderr


def one_line_refusal(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeface: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_export_into_an_existing_folder_is_refused_before_writing(tmp_path: Path) -> None:
    for name in MODELS:
        if not model_file(load_manifest().get(name)).is_file():
            pytest.skip(f"{name} not built (edgeface models build)")
    folder = tmp_path / "out"
    folder.mkdir()
    result = run_on_host("models", "export", str(folder))
    one_line_refusal(result, f"{folder} is a folder")
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no .partial left beside it"
    assert not list(folder.iterdir())


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"", "the file is empty"), (b"# not a tar\n" * 100, "not a tar archive")],
)
def test_import_of_an_empty_or_non_tar_file_is_one_line(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    bad = tmp_path / "models.tar"
    bad.write_bytes(content)
    result = run_on_device("models", "import", str(bad), "--cache-dir", str(tmp_path / "c"))
    one_line_refusal(result, str(bad), fragment)


def test_sha256_must_be_hex_and_a_mismatch_shows_the_actual_digest(
    bundle: Path, tmp_path: Path
) -> None:
    cache = str(tmp_path / "c")
    result = run_on_device("models", "import", str(bundle), "--cache-dir", cache, "--sha256", "xyz")
    one_line_refusal(result, "--sha256 'xyz'", "64 hexadecimal digits")
    actual = hashlib.sha256(bundle.read_bytes()).hexdigest()
    result = run_on_device(
        "models", "import", str(bundle), "--cache-dir", cache, "--sha256", "A" * 64
    )
    one_line_refusal(result, f"sha256 is {actual}", "a" * 64)


def test_a_bundle_missing_a_model_file_names_the_model_not_a_temp_path(
    bundle: Path, tmp_path: Path
) -> None:
    name = member_name(bundle, "blazeface-short")
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    kept = {n: d for n, d in members.items() if n != name and n != SUMS}
    short = tmp_path / "short.tar"
    with tarfile.open(short, "w") as tar:
        for member, data in kept.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    rewrite(short, short, {}, resum=True)
    cache = tmp_path / "cache"
    result = run_on_device("models", "import", str(short), "--cache-dir", str(cache))
    line = one_line_refusal(result, "blazeface-short", "its model file is not in the bundle")
    assert ".import-" not in line and "models build" not in line
    assert not [p for p in cache.iterdir()], "nothing installed"


def test_models_verify_with_tensorflow_passes_an_imported_bundle(
    bundle: Path, tmp_path: Path
) -> None:
    """A build host verifying a cache filled by `models import`: the models the bundle does not
    hold are listed as not built, not FAILED."""
    pytest.importorskip("tensorflow", reason="the agreement check needs the [build] extra")
    cache = tmp_path / "cache"
    assert run_on_device("models", "import", str(bundle), "--cache-dir", str(cache)).returncode == 0
    # The float references come from the sources a build host keeps beside its models.
    (cache / "sources").symlink_to(default_cache_dir() / "sources")
    result = run_on_host("models", "verify", "--cache-dir", str(cache), timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stderr
    assert "facenet-int8" in result.stdout and "not built" in result.stdout


def test_models_list_columns_line_up(tmp_path: Path) -> None:
    result = run_on_host("models", "list", "--cache-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    # With an empty cache every row ends "not built": kind, quantization and state each start
    # at the same column on every row.
    starts = {
        tuple(m.start() for m in re.finditer(r"\S+", line))[1:4]
        for line in result.stdout.splitlines()
    }
    assert len(starts) == 1, result.stdout
