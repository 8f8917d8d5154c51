#!/usr/bin/env bash
# Runs a command with DATABASE_URL and REDIS_URL set: the caller's when given, otherwise
# throwaway servers (scripts/servers.sh) started for the command and stopped afterwards
# (servers that were already running are reused and left running). Without the server binaries
# the command runs without them (its backend parts skip loudly), except under CI=true, where
# that is a failure.
#
#   bash scripts/with-servers.sh <command> [args...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

wanted=()
[[ -n "${DATABASE_URL:-}" ]] || wanted+=(postgres)
[[ -n "${REDIS_URL:-}" ]] || wanted+=(redis)

started=()
if ((${#wanted[@]} > 0)); then
  for server in "${wanted[@]}"; do
    if exports=$(bash scripts/servers.sh start "$server"); then
      eval "$exports"
      [[ "$exports" == *"# started $server"* ]] && started+=("$server")
    elif [[ "${CI:-}" == "true" ]]; then
      echo "with-servers: CI=true and no $server server could be started: failing (see the messages above)" >&2
      exit 1
    else
      printf '\n%s\n%s\n%s\n\n' \
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
        "!!! no $server server: what needs it will be SKIPPED. Run: bash scripts/setup.sh" \
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    fi
  done
fi

stop_started() {
  local server
  for server in "${started[@]}"; do bash scripts/servers.sh stop "$server" >&2 || true; done
}
trap stop_started EXIT

rc=0
"$@" || rc=$?
exit "$rc"
