"""deploy/install.sh --models-bundle: models exported here, imported by the device venv.

The device venv is real (edgeface and its runtime dependencies, no TensorFlow), inside a
temporary root; install.sh must run as root (it chowns).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from integration.test_deploy import INSTALL, seed_root

from edgeface.models import load_manifest, model_file
from edgeface.models.bundle import default_export_models, export_bundle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("useradd") is None,
        reason="install.sh must run as root with the shadow tools (useradd --prefix)",
    ),
]


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--no-systemctl", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=root,
    )


def created(root: Path) -> list[str]:
    """What an install leaves in the seeded root: its folders and the service user."""
    paths = [p for p in ("opt/edgeface", "etc/edgeface", "var/lib/edgeface") if (root / p).exists()]
    users = (root / "etc" / "passwd").read_text()
    return paths + (["user edgeface"] if "\nedgeface:" in "\n" + users else [])


@pytest.mark.parametrize(
    ("digest", "said"),
    [("0" * 64, "sha256 is {actual}, not the expected"), ("xyz", "expected 64 hexadecimal")],
)
def test_a_wrong_models_sha256_is_refused_before_anything_is_created(
    tmp_path: Path, digest: str, said: str
) -> None:
    root = tmp_path / "root"
    seed_root(root)
    bundle = tmp_path / "models.tar"
    bundle.write_bytes(b"any bundle")
    result = install(root, "--models-bundle", str(bundle), "--models-sha256", digest)
    assert result.returncode != 0
    actual = hashlib.sha256(b"any bundle").hexdigest()
    assert said.format(actual=actual) in result.stderr, result.stderr
    assert created(root) == []


def test_install_imports_a_bundle_without_tensorflow(tmp_path: Path) -> None:
    manifest = load_manifest()
    names = default_export_models(manifest)
    if not all(model_file(manifest.get(n)).is_file() for n in names):
        pytest.skip("models not built")
    pytest.importorskip("skimage", reason="export needs scikit-image (build extra)")
    bundle = tmp_path / "models.tar"
    digest = export_bundle(bundle)
    root = tmp_path / "root"
    seed_root(root)

    refused = install(root, "--models-bundle", str(bundle), "--models-sha256", "0" * 64)
    assert refused.returncode != 0
    assert f"sha256 is {digest}, not the expected {'0' * 64}" in refused.stderr

    result = install(root, "--models-bundle", str(bundle), "--models-sha256", digest)
    assert result.returncode == 0, result.stdout + result.stderr
    venv_python = root / "opt" / "edgeface" / "venv" / "bin" / "python"
    no_tf = subprocess.run(
        [str(venv_python), "-c", "import tensorflow"], capture_output=True, check=False
    )
    assert no_tf.returncode != 0, "the device venv has no TensorFlow"
    models = root / "var" / "lib" / "edgeface" / "models"
    uid = int(
        next(
            line
            for line in (root / "etc" / "passwd").read_text().splitlines()
            if line.startswith("edgeface:")
        ).split(":")[2]
    )
    for name in names:
        path = model_file(manifest.get(name), models)
        assert path.is_file(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == uid
    assert stat.S_IMODE(models.stat().st_mode) == 0o700
