#!/usr/bin/env bash
# Idempotent machine setup for this repository (Debian 12 / bookworm, run as root):
#   - PostgreSQL server (Debian package `postgresql`, server 15) if absent
#   - Redis (Debian package `redis-server`) if absent
#   - g++, make and python3 if absent (better-sqlite3 compiles its binding at install)
#   - pnpm 10 (npm i -g pnpm@10) if absent
#   - pnpm install --frozen-lockfile
#
#   bash scripts/setup.sh        (also: pnpm setup)
#
# It never starts servers: tests and CI use throwaway ones from scripts/servers.sh.
# Node.js >= 20 (with npm) must already be installed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# run_quiet LABEL CMD...: one line per step; the command's output is shown only on failure.
run_quiet() {
  local label="$1" out start rc=0
  shift
  out="$(mktemp "${TMPDIR:-/tmp}/setup-step.XXXXXX")"
  start=$SECONDS
  "$@" >"$out" 2>&1 </dev/null || rc=$?
  if ((rc != 0)); then
    say "$label: FAILED (exit $rc), output follows"
    sed 's/^/    /' "$out" >&2
    rm -f "$out"
    exit "$rc"
  fi
  rm -f "$out"
  say "$label: done ($((SECONDS - start))s)"
}

# --- Node.js -----------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node is not installed; install Node.js >= 20 (with npm) first"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "Node.js >= 20 is required, found $(node -v)"
say "node $(node -v): ok"

# --- System packages -----------------------------------------------------------------------
have_postgres() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/pg_isready" && -x "$d/psql" ]] && return 0
  done
  return 1
}
have_redis() { command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; }

packages=()
if have_postgres; then
  say "postgresql: already installed ($(ls -d /usr/lib/postgresql/*/bin | sed 's#.*/postgresql/\([^/]*\)/bin#\1#' | tr '\n' ' ' | sed 's/ $//'))"
else
  packages+=(postgresql)
fi
if have_redis; then
  say "redis: already installed ($(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p'))"
else
  packages+=(redis-server)
fi
# better-sqlite3 builds its binding from source at install time (no prebuilt one is reachable).
{ command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1; } || packages+=(g++ make)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
# flock (servers.sh locking) and, as root, runuser (to run PostgreSQL as `postgres`).
command -v flock >/dev/null 2>&1 || packages+=(util-linux)
((EUID != 0)) || command -v runuser >/dev/null 2>&1 || packages+=(util-linux)

if ((${#packages[@]} > 0)); then
  # de-duplicate
  mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)
  if ((EUID != 0)); then
    die "missing: ${packages[*]}. Run this script as root, or install them yourself: apt-get install -y ${packages[*]}"
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing: ${packages[*]}, and apt-get is not available to install them"

  # The Debian packages would start a system PostgreSQL (port 5432) and Redis (port 6379)
  # right after installing them. We only ever use throwaway servers, so forbid service
  # starts during the install with a temporary policy-rc.d (unless one already exists).
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# temporary, created by scripts/setup.sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created_policy=1
    trap 'if ((created_policy)); then rm -f "$policy"; fi' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  run_quiet "apt-get update" apt-get update
  run_quiet "apt-get install ${packages[*]}" apt-get install -y --no-install-recommends "${packages[@]}"
  if ((created_policy)); then rm -f "$policy"; created_policy=0; fi

  have_postgres || die "postgresql was installed but no server binaries were found in /usr/lib/postgresql/*/bin"
  have_redis || die "redis-server was installed but redis-server/redis-cli are not on PATH"
fi

# --- pnpm ------------------------------------------------------------------------------------
pnpm_major() { pnpm --version 2>/dev/null | cut -d. -f1; }
if command -v pnpm >/dev/null 2>&1 && [[ "$(pnpm_major)" == 10 ]]; then
  say "pnpm $(pnpm --version): ok"
else
  command -v npm >/dev/null 2>&1 || die "npm is not installed (needed to install pnpm 10)"
  if ((EUID != 0)) && [[ ! -w "$(npm config get prefix 2>/dev/null)" ]]; then
    die "pnpm 10 is missing and the global npm prefix is not writable; run as root or: npm i -g pnpm@10"
  fi
  run_quiet "npm i -g pnpm@10" npm i -g pnpm@10
  hash -r
  [[ "$(pnpm_major)" == 10 ]] || die "pnpm 10 was installed but \`pnpm --version\` says $(pnpm --version 2>&1 || true)"
  say "pnpm $(pnpm --version): ok"
fi

# --- Dependencies ------------------------------------------------------------------------------
# confirm-modules-purge=false: without a TTY, pnpm would otherwise abort instead of
# recreating a node_modules made with different settings.
run_quiet "pnpm install --frozen-lockfile" pnpm install --frozen-lockfile --config.confirm-modules-purge=false
