#!/usr/bin/env bash
# The front door: install, build the models, and run the daemon end to end on a sample video
# with its own broker (mosquitto when installed, otherwise an embedded Python broker).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh build,demo
exec .venv/bin/edgeface demo --workdir demo "$@"
