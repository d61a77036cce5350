#!/usr/bin/env bash
# Installs everything the tests need (venv, models, mosquitto when we may install it) and runs
# the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh build,dev,demo
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test: installing mosquitto (the tests start their own brokers with it)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
  else
    echo "test: mosquitto is not installed; broker tests will be skipped (apt-get install mosquitto)" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
