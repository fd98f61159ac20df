#!/usr/bin/env bash
# Installs SparkPost's own Node client (sparkpost@2.1.4, from the npm registry)
# into .tools/ so that tests/rest/test_node_sparkpost.py can drive the shim with
# it. Needs node and npm; says so and exits 1 when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .tools/node_modules/sparkpost/package.json ] && exit 0
if ! command -v npm >/dev/null; then
  echo "npm not found: the node-sparkpost client test will be skipped" >&2
  exit 1
fi
mkdir -p .tools
cd .tools
[ -f package.json ] || echo '{"name":"mailevents-tools","private":true}' > package.json
npm install --silent --no-audit --no-fund sparkpost@2.1.4 >/dev/null
