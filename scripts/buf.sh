#!/usr/bin/env bash
# buf from the npm package @bufbuild/buf, installed into .tools/ on first use.
#   buf.sh lint      -- buf lint (STANDARD)
#   buf.sh breaking  -- wire compatibility (FILE rules) against the released
#                       v1 image protos/v1-baseline.binpb
#   buf.sh baseline  -- rewrite that image (only when a release is cut)
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=.tools/node_modules/.bin/buf
if [ ! -x "$BUF" ]; then
  mkdir -p .tools
  (cd .tools && [ -f package.json ] || echo '{"name":"mailevents-tools","private":true}' > package.json
   npm install --silent --no-audit --no-fund @bufbuild/buf@1 >/dev/null)
fi
case "${1:-lint}" in
  lint) "$BUF" lint && echo "buf lint: clean" ;;
  breaking) "$BUF" breaking --against protos/v1-baseline.binpb && echo "buf breaking: no wire-incompatible change" ;;
  baseline) "$BUF" build -o protos/v1-baseline.binpb && echo "wrote protos/v1-baseline.binpb" ;;
  *) echo "usage: buf.sh lint|breaking|baseline" >&2; exit 2 ;;
esac
