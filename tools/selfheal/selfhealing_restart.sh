#!/usr/bin/env bash
# The no-Alertmanager option: one `selfheal poll` pass (Prometheus's firing alerts -> the same
# per-service workflows the webhook feeds). Run every 30 s by deploy/systemd/selfhealing-check.timer.
#
# Despite its historical name, this script never restarts anything itself: every restart goes
# through the service's workflow, under its policy (validation window, cooldown, budget,
# verification, escalation). It only runs the poll, under a lock so two runs never overlap.
set -euo pipefail

readonly SELF="${0##*/}"

usage() {
  cat <<EOF
Usage: $SELF [--help] [-- EXTRA_POLL_ARGS...]

Runs one \`selfheal poll\` pass: reads the firing alerts from Prometheus and signals the
per-service self-healing workflows. Never restarts anything itself. If another run still holds
the lock, this one logs that and exits 0. If the lock cannot be taken for any other reason (an
invalid SELFHEAL_LOCK_WAIT, an unusable lock file) it says so and fails. Exits with
\`selfheal poll\`'s exit code otherwise.

Environment:
  SELFHEAL_BIN        selfheal's entry point, run with node (default /opt/selfheal/bin/selfheal.js)
  SELFHEAL_CONFIG     configuration file (default /etc/selfheal/selfheal.yaml)
  SELFHEAL_LOCK_FILE  lock file shared by all runs (default /run/lock/selfhealing-check.lock)
  SELFHEAL_LOCK_WAIT  seconds to wait for the lock before skipping the pass (default 0; e.g. 2.5)
EOF
}

log() {
  # stderr reaches the journal when run by systemd.
  printf '%s: %s\n' "$SELF" "$*" >&2
}

extra=()
while (($# > 0)); do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --)
      shift
      extra=("$@")
      break
      ;;
    *)
      log "unknown argument: $1 (see --help)"
      exit 64
      ;;
  esac
done

bin="${SELFHEAL_BIN:-/opt/selfheal/bin/selfheal.js}"
config="${SELFHEAL_CONFIG:-/etc/selfheal/selfheal.yaml}"
lock_file="${SELFHEAL_LOCK_FILE:-/run/lock/selfhealing-check.lock}"
lock_wait="${SELFHEAL_LOCK_WAIT:-0}"

# flock exits with this code only when the lock is still held after the wait; any other non-zero
# code is a failure of flock itself, which must not pass for "another run holds the lock".
readonly LOCK_BUSY=75

if [[ ! "$lock_wait" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  log "SELFHEAL_LOCK_WAIT must be a number of seconds (e.g. 0 or 2.5), got '$lock_wait'"
  exit 64
fi

if ! command -v node >/dev/null 2>&1; then
  log "node is not on PATH ($PATH)"
  exit 127
fi

# The lock lives on file descriptor 9 for the life of this script and of `selfheal poll`, which
# inherits it.
if ! exec 9>>"$lock_file"; then
  log "cannot open the lock file $lock_file"
  exit 73
fi
lock_status=0
flock --conflict-exit-code "$LOCK_BUSY" --wait "$lock_wait" 9 || lock_status=$?
if ((lock_status == LOCK_BUSY)); then
  log "another run holds $lock_file; skipping this pass"
  exit 0
elif ((lock_status != 0)); then
  log "flock failed on $lock_file (exit code $lock_status, SELFHEAL_LOCK_WAIT=$lock_wait); not polling"
  exit "$lock_status"
fi

status=0
node "$bin" poll --config "$config" "${extra[@]}" || status=$?
if ((status != 0)); then
  log "selfheal poll failed with exit code $status"
fi
exit "$status"
