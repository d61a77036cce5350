#!/usr/bin/env bash
# Creates .venv in the checkout, installs edgeface with the given extras, and builds the models
# (cached in ~/.cache/edgeface/models, so a second run is quick). Used by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-build}
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv || {
    echo "bootstrap: cannot create a venv; on Debian: apt-get install python3-venv" >&2
    exit 1
  }
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
.venv/bin/edgeface models build
