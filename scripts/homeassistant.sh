#!/usr/bin/env bash
# Installs Home Assistant Core into a cached venv OUTSIDE the checkout (default
# ~/.cache/edgeface/ha-venv) for tests/integration/test_homeassistant.py; prints the venv path.
# A second run with the venv complete does nothing. Needs Python 3.11 or 3.12 and PyPI.
#
# A plain `pip install homeassistant==2024.3.3` resolves to josepy 2.x and serves HTTP 500, so
# the install uses the constraints file HA ships inside its own wheel
# (homeassistant/package_constraints.txt) plus `josepy<2`, and adds the packages the
# integrations the test loads need, so that `hass --skip-pip` runs without installing anything.
set -euo pipefail
version=${EDGEFACE_HA_VERSION:-2024.3.3}
venv=${EDGEFACE_HA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeface/ha-venv}
python=${PYTHON:-$(command -v python3.11 || command -v python3.12 || echo python3.11)}
marker="$venv/.edgeface-ha-$version"
if [ -f "$marker" ]; then
  echo "$venv"
  exit 0
fi
command -v "$python" >/dev/null || {
  echo "homeassistant.sh: $python not found (HA $version needs Python 3.11 or 3.12; set PYTHON=...)" >&2
  exit 1
}
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" -m pip download --quiet --no-deps --dest "$work" "homeassistant==$version"
wheel=$(ls "$work"/homeassistant-*.whl)
"$venv/bin/python" - "$wheel" "$work/constraints.txt" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl:
    text = whl.read("homeassistant/package_constraints.txt").decode()
# pip refuses constraints with extras or URLs; keep plain `name<op>version` lines.
keep = [l for l in text.splitlines() if l and not l.startswith("#") and "[" not in l and "@" not in l]
open(sys.argv[2], "w").write("\n".join(keep) + "\n")
PY
"$venv/bin/python" -m pip install --quiet -c "$work/constraints.txt" "$wheel" "josepy<2"
# The requirements (as pinned in their manifests) of the integrations HA always sets up plus the
# ones the test configures, and of everything they depend on or import, so `hass --skip-pip` runs.
"$venv/bin/python" - "$work/requirements.txt" <<'PY'
import json, sys
from pathlib import Path
from homeassistant import bootstrap, components
from homeassistant.components.mqtt.const import PLATFORMS
root = Path(components.__file__).parent
# mqtt sets up an entity platform per component it supports; camera imports stream undeclared.
todo = set(bootstrap.DEFAULT_INTEGRATIONS) | bootstrap.CORE_INTEGRATIONS | {
    "api", "config", "http", "input_boolean", "mqtt", "onboarding", "system_log", "stream",
    *(str(p) for p in PLATFORMS)}
seen, requirements = set(), set()
while todo:
    domain = todo.pop()
    seen.add(domain)
    manifest = json.loads((root / domain / "manifest.json").read_text())
    requirements.update(manifest.get("requirements", []))
    # after_dependencies too: analytics, for one, imports recorder although it does not set it up
    todo |= set(manifest.get("dependencies", []) + manifest.get("after_dependencies", [])) - seen
open(sys.argv[1], "w").write("\n".join(sorted(requirements)) + "\n")
PY
"$venv/bin/python" -m pip install --quiet -c "$work/constraints.txt" -r "$work/requirements.txt"
touch "$marker"
echo "$venv"
