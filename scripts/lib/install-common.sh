# Shared by scripts/install-test-deps.sh and scripts/install-bench-peers.sh (sourced, not run).
# The sourcing script sets before it: `installer` (its name, for messages), `layout` (bumped when
# the way a part is installed changes), `stamp_name` and `log` (the log file of a run).

die() {
  echo "$installer: $*" >&2
  exit 1
}

# One writer at a time: holds a lock on DIR/.install.lock until the script exits.
take_install_lock() { # dir
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$1/.install.lock"
    flock 9
  fi
}

fingerprint() { # files... -> one line
  echo "layout=$layout $(sha256sum "$@" | awk '{print $1}' | tr '\n' ' ')"
}

stamp_ok() { # dir expected-fingerprint
  [[ -f "$1/$stamp_name" ]] && [[ "$(head -n1 "$1/$stamp_name")" == "$2" ]]
}

# Runs a step with its output in the log (started afresh by the first step of a run).
log_started=""
start_log() {
  if [[ -z "$log_started" ]]; then
    : >"$log"
    log_started=1
  fi
}
try_logged() { # description command... -> the command's status
  start_log
  echo "== $1: ${*:2}" >>"$log"
  "${@:2}" >>"$log" 2>&1
}
run_logged() { # description command...; on failure shows the log's tail and stops
  if ! try_logged "$@"; then
    echo "$installer: $1 failed; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}
