#!/usr/bin/env bash
# Creates .venv in the checkout, installs edgeface with the given extras, and builds the models
# (cached in ~/.cache/edgeface/models, so a second run is quick). Used by demo.sh and test.sh.
#
# On a device, skip TensorFlow: install without the build extra and import a bundle exported on
# a build host (`edgeface models export models.tar`):
#   EDGEFACE_MODELS_BUNDLE=models.tar scripts/bootstrap.sh ""
# EDGEFACE_SYSTEM_SITE_PACKAGES=1 lets the venv see the OS's packages (python3-picamera2 from apt
# for a Raspberry Pi camera module).
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1-build}
python=${PYTHON:-python3}
venv_opts=()
[ "${EDGEFACE_SYSTEM_SITE_PACKAGES:-0}" = 1 ] && venv_opts+=(--system-site-packages)
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv "${venv_opts[@]}" .venv || {
    echo "bootstrap: cannot create a venv; on Debian: apt-get install python3-venv" >&2
    exit 1
  }
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
if [ -n "${EDGEFACE_MODELS_BUNDLE:-}" ]; then
  .venv/bin/edgeface models import "$EDGEFACE_MODELS_BUNDLE"
else
  .venv/bin/edgeface models build
fi
