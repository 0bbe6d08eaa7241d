# Helpers for the README demonstration parts (demo/NN-*.sh). Sourced, not run.
# Every part runs with: EG (the edgeguard command), DEMO_TMP (scratch dir, removed at
# the end), AUDIT_DIR (one audit log shared by all parts), SOCK (control socket).
# A part that creates anything registers its clean-up with `on_exit "command ..."`.

EG=${EG:-"$PWD/.venv/bin/edgeguard"}
: "${DEMO_TMP:?demo/lib.sh needs DEMO_TMP}"
AUDIT_DIR=${AUDIT_DIR:-$DEMO_TMP/audit}
SOCK=${SOCK:-$DEMO_TMP/control.sock}
EG_PID=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# on_exit CMD...: run CMD when the demo ends (last registered runs first).
on_exit() { DEMO_CLEANUP="$*; ${DEMO_CLEANUP:-}"; }

# eg_start [run options...]: start the daemon in the background, wait until it answers.
eg_start() {
  "$EG" run --audit-dir "$AUDIT_DIR" --control-socket "$SOCK" \
      --state-dir "$DEMO_TMP/state" "$@" 2>>"$DEMO_TMP/daemon.log" &
  EG_PID=$!
  for _ in $(seq 1 100); do
    "$EG" status --socket "$SOCK" >/dev/null 2>&1 && return 0
    kill -0 "$EG_PID" 2>/dev/null || { cat "$DEMO_TMP/daemon.log" >&2; return 1; }
    sleep 0.1
  done
  echo "edgeguard did not become ready" >&2
  return 1
}

# eg_stop: SIGTERM the daemon and wait for it (it flushes and closes the log).
eg_stop() {
  [ -n "$EG_PID" ] || return 0
  kill -TERM "$EG_PID" 2>/dev/null || true
  wait "$EG_PID" 2>/dev/null || true
  EG_PID=""
}
