#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and local tries: `start` installs Debian's
# `postgresql` when no initdb is found, creates a temporary cluster, starts it
# on 127.0.0.1 (trust auth: loopback only, data thrown away on `stop`), creates
# the database `mailevents` and prints its URL on the last line.
# `stop` stops that server and deletes its data; `url` prints the URL again.
# Runs that overlap share one server: `start` counts its users and `stop`
# only stops it when the last one is done.
#
#   url=$(bash scripts/postgres.sh start | tail -n 1)
#   MAILEVENTS_TEST_POSTGRES_URL=$url .venv/bin/pytest -m postgres
#   bash scripts/postgres.sh stop
#
# For fault tests, on a server of their own (its own MAILEVENTS_PG_STATE, never
# the shared one): `halt` stops it in immediate mode (a crash: no checkpoint,
# connections cut) keeping its data, `resume` starts it again (crash recovery),
# `restart` does both, like `pg_ctl restart -m immediate`.
#
# Environment: MAILEVENTS_PG_PORT (default: a free port), MAILEVENTS_PG_STATE
# (the file remembering the running server; default /tmp/mailevents-pg.state).
set -euo pipefail

STATE=${MAILEVENTS_PG_STATE:-/tmp/mailevents-pg.state}
DB=mailevents

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

install_postgres() {
  if [ "$(id -u)" != 0 ]; then
    log "no PostgreSQL found under /usr/lib/postgresql/*/bin and not root: install 'postgresql' first"
    exit 1
  fi
  log "installing Debian's postgresql package"
  apt_install postgresql tzdata || exit 1
}

# shellcheck source=scripts/throwaway-lib.sh
. "$(dirname "$0")/throwaway-lib.sh"

running() {
  [ -f "$STATE" ] || return 1
  # shellcheck disable=SC1090
  . "$STATE"
  [ -n "${BINDIR:-}" ] && [ -d "${DATADIR:-}" ] && as_owner "$BINDIR/pg_ctl" -D "$DATADIR" status >/dev/null 2>&1
}

start() {
  if running; then
    echo $(($(users) + 1)) >"$STATE.users"
    log "already running (data in $DATADIR; $(users) users)"
    url_of "$PORT"
    return 0
  fi
  local bindir
  bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir); }
  ensure_owner
  local port=${MAILEVENTS_PG_PORT:-$(free_port)}
  local datadir
  datadir=$(mktemp -d /tmp/mailevents-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$datadir"; fi
  chmod 700 "$datadir"
  local locale_args=(--encoding=UTF8 --locale=C.UTF-8)
  if ! locale -a 2>/dev/null | grep -qi '^c\.utf-\?8$'; then locale_args=(--encoding=UTF8 --no-locale); fi
  as_owner "$bindir/initdb" -D "$datadir" -U postgres --auth=trust "${locale_args[@]}" >"$datadir.initdb.log" 2>&1 || {
    cat "$datadir.initdb.log" >&2
    exit 1
  }
  # A disposable server: durability settings off make tests fast; nothing
  # here is for production use (docs/deploy.md is).
  cat >>"$datadir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$datadir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
log_min_messages = warning
EOF
  # 9>&-: the server must not inherit (and so hold) the lock of this script.
  as_owner "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 start >&2 9>&- || {
    cat "$datadir/server.log" >&2
    exit 1
  }
  printf 'BINDIR=%q\nDATADIR=%q\nPORT=%q\n' "$bindir" "$datadir" "$port" >"$STATE"
  echo 1 >"$STATE.users"
  as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt \
    -c "CREATE DATABASE $DB" >&2
  log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $datadir)"
  url_of "$port"
}

stop_all() {
  # shellcheck disable=SC1090
  . "$STATE"
  as_owner "$BINDIR/pg_ctl" -D "$DATADIR" -m fast -w stop >&2 || true
  rm -rf "$DATADIR" "$DATADIR.initdb.log"
  rm -f "$STATE" "$STATE.users"
}

halt() {
  running || { log "not running"; return 1; }
  as_owner "$BINDIR/pg_ctl" -D "$DATADIR" -m immediate -w stop >&2
}

resume() {
  [ -f "$STATE" ] || { log "no server to resume"; return 1; }
  # shellcheck disable=SC1090
  . "$STATE"
  as_owner "$BINDIR/pg_ctl" -D "$DATADIR" -l "$DATADIR/server.log" -w -t 60 start >&2 9>&-
}

# One invocation at a time per state file: overlapping starts and stops count right.
exec 9>"$STATE.lock"
flock 9

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  url) running && url_of "$PORT" ;;
  halt) halt ;;
  resume) resume ;;
  restart) halt && resume ;;
  *)
    echo "usage: $0 start|stop|url|halt|resume|restart" >&2
    exit 2
    ;;
esac
