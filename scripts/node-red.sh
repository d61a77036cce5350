#!/usr/bin/env bash
# Installs Node-RED from npm into a cached folder OUTSIDE the checkout (default
# ~/.cache/edgeface/node-red) for tests/integration/test_node_red.py; prints the path of the
# node-red executable. A second run with the install complete does nothing. Needs Node.js 18.5+
# (Node-RED 5 needs Node 22; 4.1 is the newest line for Node 20) and the npm registry.
set -euo pipefail
version=${EDGEFACE_NODE_RED_VERSION:-4.1.8}
dir=${EDGEFACE_NODE_RED_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeface/node-red}
bin="$dir/node_modules/.bin/node-red"
marker="$dir/.edgeface-node-red-$version"
if [ -f "$marker" ]; then
  echo "$bin"
  exit 0
fi
command -v npm >/dev/null || {
  echo "node-red.sh: npm not found (install Node.js 18.5+ with npm)" >&2
  exit 1
}
rm -rf "$dir"
mkdir -p "$dir"
npm install --prefix "$dir" --no-audit --no-fund --silent "node-red@$version" >&2
touch "$marker"
echo "$bin"
