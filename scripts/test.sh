#!/usr/bin/env bash
# The test command (`pnpm test`): every package's tests, on the workspace sources.
#
# PostgreSQL and Redis tests use DATABASE_URL / REDIS_URL when they are set. Otherwise this
# starts throwaway servers (scripts/servers.sh) for the run and stops them afterwards (servers
# that were already running are reused and left running). Without the server binaries the
# backend tests are skipped loudly, except under CI=true, where that is a failure.
# Extra arguments go to vitest (e.g. `pnpm test --project core`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

wanted=()
[[ -n "${DATABASE_URL:-}" ]] || wanted+=(postgres)
[[ -n "${REDIS_URL:-}" ]] || wanted+=(redis)

started=()
if ((${#wanted[@]} > 0)); then
  already_running=0
  [[ -f .tmp/servers.env ]] && already_running=1
  for server in "${wanted[@]}"; do
    if exports=$(bash scripts/servers.sh start "$server"); then
      eval "$exports"
      ((already_running)) || started+=("$server")
    elif [[ "${CI:-}" == "true" ]]; then
      echo "test: CI=true and no $server server could be started: failing (see the messages above)" >&2
      exit 1
    else
      printf '\n%s\n%s\n%s\n\n' \
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
        "!!! test: no $server server: its tests will be SKIPPED. Run: bash scripts/setup.sh" \
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    fi
  done
fi

stop_started() {
  if ((${#started[@]} > 0)); then bash scripts/servers.sh stop >&2 || true; fi
}
trap stop_started EXIT

rc=0
pnpm exec vitest run "$@" || rc=$?
exit "$rc"
