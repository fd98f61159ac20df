#!/usr/bin/env bash
# The whole test suite. PostgreSQL tests run against a throwaway server that
# scripts/postgres.sh installs (Debian packages) and starts on loopback; when
# that is impossible they are skipped, and this says so loudly.
set -uo pipefail
cd "$(dirname "$0")/.."

started_pg=""
if [ -z "${MAILEVENTS_TEST_POSTGRES_URL:-}" ] && [ -f scripts/postgres.sh ]; then
  if url=$(bash scripts/postgres.sh start 2>.pytest-postgres.log | tail -n 1) && [ -n "$url" ]; then
    export MAILEVENTS_TEST_POSTGRES_URL="$url"
    started_pg=1
    echo "PostgreSQL for tests: $url"
  else
    echo "NOTE: could not start PostgreSQL (see .pytest-postgres.log): PostgreSQL tests will be SKIPPED."
  fi
fi

# SparkPost's real Node client drives the shim in tests/rest/test_node_sparkpost.py.
if ! bash scripts/node-sparkpost.sh; then
  echo "NOTE: the SparkPost Node client is not installed: its test will be SKIPPED."
fi

.venv/bin/pytest -q -p no:cacheprovider "$@"
status=$?

if [ -n "$started_pg" ]; then
  bash scripts/postgres.sh stop >/dev/null 2>&1 || true
fi
exit $status
