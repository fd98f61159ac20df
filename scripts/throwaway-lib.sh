# Helpers shared by the throwaway database scripts (postgres.sh, citus.sh).
# Sourced, not run: the caller sets DB (the database name) and STATE (its state
# file) first, and defines `log`, `running` (is its server up?) and `stop_all`
# (stop it and delete its data and state).

# Run a command as the cluster's owner: initdb and postgres refuse root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

url_of() { echo "postgresql://postgres@127.0.0.1:$1/$DB"; }

# How many runs use the running server: `start` counts up, `stop` down.
users() { cat "$STATE.users" 2>/dev/null || echo 0; }

# Debian packages, installed without starting the services they bring (their
# own clusters are not used): policy-rc.d refuses every start meanwhile.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  local status=0
  apt-get install -y -qq --no-install-recommends "$@" >&2 || status=$?
  rm -f /usr/sbin/policy-rc.d
  return "$status"
}

# The cluster's owner, as root: initdb and postgres refuse to run as root.
ensure_owner() {
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
}

# One user fewer; the last one stops the server and deletes its data.
stop() {
  if [ ! -f "$STATE" ]; then
    log "not running"
    return 0
  fi
  local left=$(($(users) - 1))
  if [ "$left" -gt 0 ] && running; then
    echo "$left" >"$STATE.users"
    log "still used by $left other run(s); left running"
    return 0
  fi
  stop_all
  log "stopped"
}
