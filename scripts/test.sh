#!/usr/bin/env bash
# The test command (`pnpm test`): every package's tests, on the workspace sources, with
# PostgreSQL and Redis from DATABASE_URL / REDIS_URL or throwaway servers (see with-servers.sh).
# Extra arguments go to vitest (e.g. `pnpm test --project core`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec bash scripts/with-servers.sh pnpm exec vitest run "$@"
