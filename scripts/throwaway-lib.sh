# Helpers shared by the throwaway database scripts (postgres.sh, citus.sh).
# Sourced, not run: the caller sets DB (the database name) and STATE (its state
# file) first.

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
