#!/usr/bin/env bash
# The whole test suite. PostgreSQL tests run against a throwaway server that
# scripts/postgres.sh installs (Debian packages) and starts on loopback, Citus
# tests against a throwaway cluster that scripts/citus.sh builds (once per
# machine) and starts; when that is impossible they are skipped, and this says
# so loudly. On CI (CI set) a Citus that cannot start fails the run.
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

started_citus=""
if [ -z "${MAILEVENTS_TEST_CITUS_URL:-}" ] && [ -f scripts/citus.sh ]; then
  if url=$(bash scripts/citus.sh start 2>.pytest-citus.log | tail -n 1) && [ -n "$url" ]; then
    export MAILEVENTS_TEST_CITUS_URL="$url"
    started_citus=1
    echo "Citus for tests: $url"
  else
    echo "NOTE: could not build or start Citus (see .pytest-citus.log): Citus tests will be SKIPPED."
    tail -n 20 .pytest-citus.log
    if [ -n "${CI:-}" ]; then
      echo "CI is set: Citus must run here; failing."
      [ -n "$started_pg" ] && bash scripts/postgres.sh stop >/dev/null 2>&1
      exit 1
    fi
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
if [ -n "$started_citus" ]; then
  bash scripts/citus.sh stop >/dev/null 2>&1 || true
fi
exit $status
