"""deploy/: the unit's offline security score and syntax, and install.sh into a temporary root.

install.sh runs for real (useradd --prefix, a venv, pip) but only inside tmp_path; it needs
root (it chowns) and pip must be able to build the package (hatchling from the index/cache).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "edgeface.service"
INSTALL = REPO / "deploy" / "install.sh"
MAX_EXPOSURE = 2.5

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False
    )


@needs_analyze
def test_offline_security_exposure_is_at_most_2_5() -> None:
    result = analyze("security", "--offline=yes", "--no-pager", str(UNIT))
    if "--offline" in result.stderr and result.returncode != 0:
        pytest.skip(f"systemd-analyze has no --offline: {result.stderr.strip()}")
    match = re.search(r"Overall exposure level for edgeface\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


@needs_analyze
def test_security_threshold_is_enforced_by_systemd_analyze() -> None:
    # --threshold makes systemd-analyze itself fail above the bar (exit status != 0).
    result = analyze(
        "security", "--offline=yes", f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNIT)
    )
    if "--threshold" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("systemd-analyze has no --threshold")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_analyze
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    # verify checks that ExecStart exists; point it at an existing binary, nothing else changes.
    text = UNIT.read_text()
    assert "ExecStart=/opt/edgeface/venv/bin/edgeface run" in text
    unit = tmp_path / "edgeface.service"
    unit.write_text(text.replace("/opt/edgeface/venv/bin/edgeface", sys.executable))
    result = analyze("verify", str(unit))
    if "Failed to initialize" in result.stderr or "not booted" in result.stderr:
        pytest.skip(f"systemd-analyze verify needs a running systemd: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    # Any "Unknown key" / deprecation warning means a directive is silently ignored.
    assert result.stderr.strip() == "", result.stderr


def test_unit_has_the_contract_settings() -> None:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    for key, value in {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "User": "edgeface",
        "SupplementaryGroups": "video",
        "StateDirectory": "edgeface",
        "StateDirectoryMode": "0700",
        "ConfigurationDirectory": "edgeface",
        "CapabilityBoundingSet": "",
        "DevicePolicy": "closed",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }.items():
        assert settings.get(key) == [value], key
    assert "PrivateDevices" not in settings  # would hide /dev/video*


# --- install.sh ---------------------------------------------------------------------------------

needs_root_tools = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="install.sh must run as root with the shadow tools (useradd --prefix)",
)


def seed_root(root: Path) -> None:
    """The minimum of an /etc that useradd --prefix can edit."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\nvideo:x:44:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\nvideo:*::\n")
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o640)


def run_install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def passwd_entry(root: Path, name: str) -> list[str] | None:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None


# Offline: --no-deps keeps the device venv small here; the runtime deps are not under test.
INSTALL_ARGS = ("--no-systemctl", "--skip-models", "--pip-option=--no-deps")


@needs_root_tools
@pytest.mark.slow
def test_install_twice_then_uninstall(tmp_path: Path) -> None:
    root = tmp_path / "root"
    seed_root(root)
    run_install(root, *INSTALL_ARGS)

    user = passwd_entry(root, "edgeface")
    assert user is not None
    uid, gid = int(user[2]), int(user[3])
    assert user[5:] == ["/var/lib/edgeface", "/usr/sbin/nologin"]
    assert "video:x:44:edgeface" in (root / "etc" / "group").read_text()

    venv = root / "opt" / "edgeface" / "venv"
    check = subprocess.run(
        # Stdlib-only modules: the runtime deps were not installed (--no-deps).
        [str(venv / "bin" / "python"), "-c", "import edgeface.systemd as m; print(m.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    # A real copy in the venv, not a link back to the checkout.
    assert check.stdout.strip().startswith(str(venv))
    assert (venv / "bin" / "edgeface").exists()

    config = root / "etc" / "edgeface" / "edgeface.yaml"
    assert config.read_text() == (REPO / "config" / "edgeface.yaml").read_text()
    assert mode(config) == 0o640 and config.stat().st_gid == gid
    assert mode(config.parent) == 0o750

    state = root / "var" / "lib" / "edgeface"
    assert mode(state) == 0o700 and state.stat().st_uid == uid
    for sub in ("gallery", "models"):
        assert (state / sub).is_dir() and (state / sub).stat().st_uid == uid

    unit = root / "etc" / "systemd" / "system" / "edgeface.service"
    assert unit.read_text() == UNIT.read_text()

    # Second run: an upgrade. The admin's config edits survive, nothing is duplicated.
    config.write_text(config.read_text() + "# edited by the admin\n")
    second = run_install(root, *INSTALL_ARGS)
    assert "kept existing /etc/edgeface/edgeface.yaml" in second.stdout
    assert config.read_text().endswith("# edited by the admin\n")
    lines = (root / "etc" / "passwd").read_text().splitlines()
    assert sum(line.startswith("edgeface:") for line in lines) == 1
    assert passwd_entry(root, "edgeface") == user

    # Uninstall keeps config and state.
    run_install(root, "--uninstall", "--no-systemctl")
    assert not unit.exists()
    assert not venv.exists()
    assert passwd_entry(root, "edgeface") is None
    groups = (root / "etc" / "group").read_text().splitlines()
    assert not any(line.startswith("edgeface:") for line in groups)
    assert "video:x:44:" in groups
    assert config.exists() and state.is_dir()

    run_install(root, "--uninstall", "--purge", "--no-systemctl")
    assert not config.parent.exists()
    assert not state.exists()


@needs_root_tools
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl not installed")
def test_install_enables_the_unit_offline_with_systemctl_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    seed_root(root)
    run_install(root, "--skip-models", "--pip-option=--no-deps", "--prefix", "/srv/ef")
    wants = root / "etc" / "systemd" / "system" / "multi-user.target.wants" / "edgeface.service"
    assert wants.is_symlink()
    unit = (root / "etc" / "systemd" / "system" / "edgeface.service").read_text()
    assert "ExecStart=/srv/ef/venv/bin/edgeface run --config /etc/edgeface/edgeface.yaml" in unit
    assert (root / "srv" / "ef" / "venv" / "bin" / "edgeface").exists()
    run_install(root, "--uninstall", "--prefix", "/srv/ef")
    assert not wants.exists()
    assert not (root / "srv" / "ef").exists()


def test_install_refuses_unknown_options() -> None:
    result = subprocess.run(
        ["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "unknown option: --frobnicate" in result.stderr


def test_install_purge_needs_uninstall(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("install.sh checks for root before its other checks")
    result = subprocess.run(
        ["bash", str(INSTALL), "--root", str(tmp_path), "--purge"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "--purge only makes sense with --uninstall" in result.stderr
