"""Real third-party clients the integration tests install once, outside the checkout.

Owns: running a project install script (scripts/homeassistant.sh, scripts/node-red.sh) that
caches its install, and skipping the calling test with the script's own last line when the
install cannot be done here (no registry, wrong Python or Node).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def install_or_skip(script: Path, what: str, timeout: float, needs: str) -> str:
    """Run `script`; its stdout on success, else skip the test with the reason."""
    try:
        done = subprocess.run(
            [str(script)], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"{what} install ({script.name}) took over {timeout / 60:.0f} minutes")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"{what} could not be installed by scripts/{script.name} ({needs}): {last}")
    return done.stdout
