#!/usr/bin/env bash
# A throwaway Citus cluster for tests and local tries: a coordinator and two
# workers on 127.0.0.1 (trust auth: loopback only, data thrown away on `stop`).
#
# `start` builds and installs Citus from ../shared/citus/citus-13.0.5.tar.gz
# once per machine (skipped when citus.so is already in `pg_config
# --pkglibdir`; the build deps come from Debian), starts the three nodes with
# shared_preload_libraries=citus, creates the database `mailevents` and the
# extension on each, registers the workers with the coordinator and prints the
# coordinator's URL on the last line. `stop` stops the nodes and deletes their
# data; `url` prints the URL again; `add-worker` starts one more worker (not
# yet registered) and prints its port, for tests that grow the cluster.
# Runs that overlap share one cluster: `start` counts its users and `stop`
# only stops it when the last one is done.
#
#   url=$(bash scripts/citus.sh start | tail -n 1)
#   MAILEVENTS_TEST_CITUS_URL=$url .venv/bin/pytest -m postgres
#   bash scripts/citus.sh stop
#
# Environment: MAILEVENTS_CITUS_STATE (the file remembering the running
# cluster; default /tmp/mailevents-citus.state), MAILEVENTS_CITUS_SOURCE (the
# source tarball; default ../shared/citus/citus-13.0.5.tar.gz beside the repo).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
STATE=${MAILEVENTS_CITUS_STATE:-/tmp/mailevents-citus.state}
SOURCE=${MAILEVENTS_CITUS_SOURCE:-$HERE/../shared/citus/citus-13.0.5.tar.gz}
DB=mailevents
PGMAJOR=15

log() { echo "citus.sh: $*" >&2; }

# shellcheck source=scripts/throwaway-lib.sh
. "$(dirname "$0")/throwaway-lib.sh"

bindir() { echo "/usr/lib/postgresql/$PGMAJOR/bin"; }

installed() {
  local pgc=/usr/lib/postgresql/$PGMAJOR/bin/pg_config
  [ -x "$pgc" ] && [ -f "$("$pgc" --pkglibdir)/citus.so" ]
}

install_citus() {
  if installed; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    log "Citus is not installed and this is not root: cannot build it"
    return 1
  fi
  [ -f "$SOURCE" ] || {
    log "no Citus source at $SOURCE"
    return 1
  }
  log "installing build dependencies (Debian packages)"
  apt_install "postgresql-$PGMAJOR" "postgresql-server-dev-$PGMAJOR" \
    libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libssl-dev autoconf flex bison make gcc tzdata ||
    return 1
  local build
  build=$(mktemp -d /tmp/citus-build.XXXXXX)
  log "building Citus from $SOURCE in $build (a few minutes)"
  tar -xzf "$SOURCE" -C "$build"
  local src
  src=$(find "$build" -mindepth 1 -maxdepth 1 -type d | head -n 1)
  (
    cd "$src"
    PG_CONFIG=/usr/lib/postgresql/$PGMAJOR/bin/pg_config ./configure --without-libcurl >"$build/configure.log" 2>&1 &&
      make -j"$(nproc)" >"$build/make.log" 2>&1 &&
      make install >"$build/install.log" 2>&1
  ) || {
    log "Citus build failed; logs in $build"
    tail -n 30 "$build"/*.log >&2 || true
    return 1
  }
  rm -rf "$build"
  log "Citus installed"
}

# One node: initdb, settings, start. Prints nothing; fails loudly.
start_node() {
  local datadir=$1 port=$2
  as_owner "$(bindir)/initdb" -D "$datadir" -U postgres --auth=trust --encoding=UTF8 --no-locale \
    >"$datadir.initdb.log" 2>&1 || {
    cat "$datadir.initdb.log" >&2
    return 1
  }
  cat >>"$datadir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$datadir'
shared_preload_libraries = 'citus'
max_connections = 300
max_prepared_transactions = 200
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
log_min_messages = warning
citus.enable_statistics_collection = off
# Few shards per table: tests make a schema (so tables) per test.
citus.shard_count = 4
# Online shard moves and splits (rebalancer, tenant isolation) use logical replication.
wal_level = logical
EOF
  # Shard splits (tenant isolation) decode with Citus's own output plugin;
  # PostgreSQL releases that restrict output plugins must be told.
  if "$(bindir)/postgres" --describe-config 2>/dev/null | grep -q '^output_plugin_libraries'; then
    echo "output_plugin_libraries = 'pgoutput, test_decoding, citus'" >>"$datadir/postgresql.conf"
  fi
  as_owner "$(bindir)/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 start >&2 9>&- || {
    cat "$datadir/server.log" >&2
    return 1
  }
  psql_at "$port" postgres -c "CREATE DATABASE $DB"
  psql_at "$port" "$DB" -c "CREATE EXTENSION citus"
}

psql_at() {
  local port=$1 db=$2
  shift 2
  as_owner "$(bindir)/psql" -h 127.0.0.1 -p "$port" -U postgres -d "$db" -qAt -v ON_ERROR_STOP=1 "$@" >&2
}

new_datadir() {
  local d
  d=$(mktemp -d "/tmp/mailevents-citus-$1.XXXXXX")
  if [ "$(id -u)" = 0 ]; then chown postgres: "$d"; fi
  chmod 700 "$d"
  echo "$d"
}

running() {
  [ -f "$STATE" ] || return 1
  # shellcheck disable=SC1090
  . "$STATE"
  local d
  for d in $DATADIRS; do
    as_owner "$(bindir)/pg_ctl" -D "$d" status >/dev/null 2>&1 || return 1
  done
}

start() {
  if running; then
    echo $(($(users) + 1)) >"$STATE.users"
    log "already running ($(users) users)"
    url_of "$PORT"
    return 0
  fi
  [ -f "$STATE" ] && stop_all
  install_citus
  ensure_owner
  local dirs="" ports="" port datadir role
  for role in coordinator worker1 worker2; do
    port=$(free_port)
    datadir=$(new_datadir "$role")
    dirs="$dirs $datadir"
    ports="$ports $port"
    # Remember every node at once, so that `stop` cleans up a half start.
    printf 'DATADIRS=%q\nPORTS=%q\nPORT=%q\n' "$dirs" "$ports" "${ports%% *}" >"$STATE"
    start_node "$datadir" "$port"
  done
  # shellcheck disable=SC2086
  set -- $ports
  PORT=$1
  printf 'DATADIRS=%q\nPORTS=%q\nPORT=%q\n' "$dirs" "$ports" "$PORT" >"$STATE"
  psql_at "$PORT" "$DB" -c "SELECT citus_set_coordinator_host('127.0.0.1', $PORT)"
  psql_at "$PORT" "$DB" -c "SELECT citus_add_node('127.0.0.1', $2)"
  psql_at "$PORT" "$DB" -c "SELECT citus_add_node('127.0.0.1', $3)"
  echo 1 >"$STATE.users"
  log "Citus $(as_owner "$(bindir)/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d "$DB" -qAt \
    -c "SELECT extversion FROM pg_extension WHERE extname = 'citus'") coordinator on 127.0.0.1:$PORT, workers on $2 and $3"
  url_of "$PORT"
}

# Start one more worker (not registered: the caller adds it) and print its port.
add_worker() {
  running || {
    log "not running"
    return 1
  }
  local port datadir
  port=$(free_port)
  datadir=$(new_datadir "worker")
  printf 'DATADIRS=%q\nPORTS=%q\nPORT=%q\n' "$DATADIRS $datadir" "$PORTS $port" "$PORT" >"$STATE"
  start_node "$datadir" "$port"
  echo "$port"
}

stop_all() {
  # shellcheck disable=SC1090
  . "$STATE"
  local d
  for d in $DATADIRS; do
    as_owner "$(bindir)/pg_ctl" -D "$d" -m fast -w stop >&2 2>/dev/null || true
    rm -rf "$d" "$d.initdb.log"
  done
  rm -f "$STATE" "$STATE.users"
}

exec 9>"$STATE.lock"
flock 9

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  url) running && url_of "$PORT" ;;
  add-worker) add_worker ;;
  install) install_citus ;;
  *)
    echo "usage: $0 start|stop|url|add-worker|install" >&2
    exit 2
    ;;
esac
