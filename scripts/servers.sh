#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis servers for tests, benchmarks and CI.
#
#   bash scripts/servers.sh start [postgres|redis|all]   # default: all
#   bash scripts/servers.sh stop [postgres|redis|all]      # default: all
#   bash scripts/servers.sh status
#   bash scripts/servers.sh env                          # eval "$(bash scripts/servers.sh env)"
#
# `start` runs the servers on free loopback ports with their data in a fresh temp dir
# (under ${TMPDIR:-/tmp}) and records them in .tmp/servers.env in the repository root.
# If servers recorded there are still alive and answering, they are reused, so `start`
# is idempotent. Concurrent `start`/`stop` calls (e.g. from several vitest workers) are
# serialized with flock on .tmp/servers.lock: they end up sharing one set of servers
# and all print the same URLs.
#
# Output contract of `start` (for test helpers): stdout carries only lines of the form
#   export DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres
#   export REDIS_URL=redis://127.0.0.1:PORT/0
# one per running server, then one comment line per requested server, `# started NAME`
# or `# reused NAME` (so a caller stops only what it started); every progress or error
# message goes to stderr. Exit code is
# non-zero if a requested server could not be started.
#
# This script never installs anything: run `bash scripts/setup.sh` first.
#
# Environment knobs:
#   SERVERS_START_TIMEOUT  seconds to wait for a server to accept connections (default 60)
#   SERVERS_LOCK_TIMEOUT   seconds to wait for another start/stop to finish (default 300)
#   PG_BIN                 directory holding initdb/pg_ctl/postgres (default: newest
#                          /usr/lib/postgresql/*/bin, else `pg_config --bindir`, else PATH)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$REPO_ROOT/.tmp"
ENV_FILE="$STATE_DIR/servers.env"
LOCK_FILE="$STATE_DIR/servers.lock"
START_TIMEOUT="${SERVERS_START_TIMEOUT:-60}"
LOCK_TIMEOUT="${SERVERS_LOCK_TIMEOUT:-300}"
TMP_PREFIX="durable-singleton-servers"

log() { printf 'servers: %s\n' "$*" >&2; }
die() { printf 'servers: error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------------------------------
# State (.tmp/servers.env). The file is plain shell, sourced by this script and by users.

SERVERS_DIR=""
PG_PORT="" PG_PID="" PG_DATA=""
REDIS_PORT="" REDIS_PID=""

load_state() {
  SERVERS_DIR="" PG_PORT="" PG_PID="" PG_DATA="" REDIS_PORT="" REDIS_PID=""
  [[ -f "$ENV_FILE" ]] || return 0
  local SERVERS_PG_PORT="" SERVERS_PG_PID="" SERVERS_PG_DATA="" SERVERS_REDIS_PORT="" SERVERS_REDIS_PID=""
  # shellcheck disable=SC1090
  source "$ENV_FILE" || { log "ignoring unreadable $ENV_FILE"; return 0; }
  PG_PORT="$SERVERS_PG_PORT" PG_PID="$SERVERS_PG_PID" PG_DATA="$SERVERS_PG_DATA"
  REDIS_PORT="$SERVERS_REDIS_PORT" REDIS_PID="$SERVERS_REDIS_PID"
  SERVERS_DIR="${SERVERS_DIR:-}"
}

url_lines() {
  if [[ -n "$PG_PORT" ]]; then
    printf 'export DATABASE_URL=postgres://postgres@127.0.0.1:%s/postgres\n' "$PG_PORT"
  fi
  if [[ -n "$REDIS_PORT" ]]; then
    printf 'export REDIS_URL=redis://127.0.0.1:%s/0\n' "$REDIS_PORT"
  fi
}

save_state() {
  mkdir -p "$STATE_DIR"
  if [[ -z "$PG_PORT" && -z "$REDIS_PORT" ]]; then
    rm -f "$ENV_FILE"
    return 0
  fi
  local tmp="$ENV_FILE.$$"
  {
    echo "# Written by scripts/servers.sh start; removed by scripts/servers.sh stop."
    url_lines
    printf 'SERVERS_DIR=%q\n' "$SERVERS_DIR"
    printf 'SERVERS_PG_PORT=%q\nSERVERS_PG_PID=%q\nSERVERS_PG_DATA=%q\n' "$PG_PORT" "$PG_PID" "$PG_DATA"
    printf 'SERVERS_REDIS_PORT=%q\nSERVERS_REDIS_PID=%q\n' "$REDIS_PORT" "$REDIS_PID"
  } >"$tmp"
  mv -f "$tmp" "$ENV_FILE" # atomic, so `env` never reads a half-written file
}

take_lock() {
  mkdir -p "$STATE_DIR"
  exec 9>"$LOCK_FILE"
  if ! flock -w "$LOCK_TIMEOUT" 9; then
    die "timed out after ${LOCK_TIMEOUT}s waiting for $LOCK_FILE (another start/stop is running)"
  fi
}

# ---------------------------------------------------------------------------------------
# Helpers

# pid_is PID NAME: true if PID is alive and its executable name is NAME. Guards against
# signalling an unrelated process that reused a recorded pid (e.g. after a reboot).
pid_is() {
  local pid="$1" name="$2" comm=""
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/comm" ]]; then
    local stat
    stat="$(cat "/proc/$pid/stat" 2>/dev/null || true)"
    [[ "${stat##*) }" != Z* ]] || return 1 # a zombie is as good as gone
    comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
  else
    comm="$(ps -o comm= -p "$pid" 2>/dev/null || true)"
  fi
  [[ "$comm" == "$name"* ]]
}

# wait_gone PID SECONDS: true once PID has exited.
wait_gone() {
  local pid="$1" deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

free_port() {
  if command -v node >/dev/null 2>&1; then
    node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
  else
    die "need node or python3 to pick a free port; run: bash scripts/setup.sh"
  fi
}

# detached CMD...: run CMD without any inherited file descriptor above 2. A daemon must
# not keep the flock fd (it would hold the lock forever) nor any pipe of whoever called
# us (a caller waiting for EOF, e.g. a CI runner or a Node child_process, would hang).
# Callers redirect stdin/stdout/stderr themselves.
detached() {
  (
    if [[ -d /proc/$BASHPID/fd ]]; then
      local fd n
      for fd in "/proc/$BASHPID/fd"/*; do
        n="${fd##*/}"
        if [[ "$n" =~ ^[0-9]+$ ]] && ((n > 2)); then eval "exec $n>&-" 2>/dev/null || true; fi
      done
    else
      exec 9>&-
    fi
    "$@"
  )
}

show_log() { # show_log FILE TITLE
  log "$2 (last 40 lines of $1):"
  if [[ -f "$1" ]]; then tail -n 40 "$1" | sed 's/^/    /' >&2; else log "    (no log file)"; fi
}

ensure_servers_dir() {
  if [[ -n "$SERVERS_DIR" && -d "$SERVERS_DIR" ]]; then return 0; fi
  SERVERS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/$TMP_PREFIX.XXXXXX")"
  # mktemp makes it 0700; the postgres user (when we are root) must be able to enter it.
  chmod 0755 "$SERVERS_DIR"
}

# The servers dir is removed only if it looks like ours.
remove_servers_dir() {
  if [[ -n "$SERVERS_DIR" && -d "$SERVERS_DIR" && "$(basename "$SERVERS_DIR")" == "$TMP_PREFIX".* ]]; then
    rm -rf -- "$SERVERS_DIR"
  fi
  SERVERS_DIR=""
}

# ---------------------------------------------------------------------------------------
# PostgreSQL

# find_pg_bin: sets PG_BIN, or returns 1. require_pg_bin: the same, or dies.
find_pg_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then
    [[ -x "$PG_BIN/initdb" ]]
    return
  fi
  local d
  # Newest Debian-packaged server first.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then PG_BIN="$d"; return 0; fi
  done
  if command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
    PG_BIN="$(pg_config --bindir)"; return 0
  fi
  if command -v initdb >/dev/null 2>&1; then
    PG_BIN="$(dirname "$(command -v initdb)")"; return 0
  fi
  return 1
}

require_pg_bin() {
  find_pg_bin ||
    die "PostgreSQL server binaries (initdb, pg_ctl) not found${PG_BIN:+ in PG_BIN=$PG_BIN}; run: bash scripts/setup.sh"
}

# initdb refuses to run as root, so as root the cluster is owned by and run as `postgres`.
as_pg() {
  if ((EUID == 0)); then
    (cd "$SERVERS_DIR" && runuser -u postgres -- "$@")
  else
    (cd "$SERVERS_DIR" && "$@")
  fi
}

pg_healthy() { # pg_healthy PORT
  [[ -n "$1" ]] || return 1
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -d postgres -U postgres -t 2 >/dev/null 2>&1 &&
    [[ "$("$PG_BIN/psql" -X -w -Atq -h 127.0.0.1 -p "$1" -U postgres -d postgres -c 'select 1' 2>/dev/null)" == 1 ]]
}

pg_alive() {
  [[ -n "$PG_PORT" ]] && pid_is "$PG_PID" postgres && pg_healthy "$PG_PORT"
}

stop_postgres() {
  [[ -n "$PG_PORT$PG_PID$PG_DATA" ]] || return 0
  local pid="$PG_PID"
  if [[ -n "$PG_DATA" && -f "$PG_DATA/postmaster.pid" ]]; then
    pid="$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || echo "$PG_PID")"
  fi
  if pid_is "$pid" postgres; then
    log "stopping postgres (pid $pid, port ${PG_PORT:-?})"
    if [[ -n "$PG_DATA" && -d "$PG_DATA" ]]; then
      as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 30 >/dev/null 2>&1 </dev/null || true
    fi
    # Fallback signals: SIGINT = fast shutdown, SIGQUIT = immediate, then SIGKILL.
    if pid_is "$pid" postgres; then kill -INT "$pid" 2>/dev/null || true; wait_gone "$pid" 15 || true; fi
    if pid_is "$pid" postgres; then kill -QUIT "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; fi
    if pid_is "$pid" postgres; then kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; fi
    pid_is "$pid" postgres && log "warning: postgres pid $pid is still running"
  fi
  if [[ -n "$PG_DATA" && -n "$SERVERS_DIR" && "$PG_DATA" == "$SERVERS_DIR"/* ]]; then
    rm -rf -- "$(dirname "$PG_DATA")"
  fi
  PG_PORT="" PG_PID="" PG_DATA=""
}

start_postgres() {
  local base="$SERVERS_DIR/postgres"
  local data="$base/data" run="$base/run" logfile="$base/postgres.log"
  rm -rf -- "$base"
  mkdir -p "$data" "$run"
  chmod 0700 "$data"
  if ((EUID == 0)); then
    id postgres >/dev/null 2>&1 || die "no 'postgres' system user to run PostgreSQL as; run: bash scripts/setup.sh"
    chown -R postgres: "$base"
  fi

  log "initdb ($("$PG_BIN/postgres" --version 2>/dev/null || echo postgres)) in $data"
  # --no-sync: skip fsyncing the freshly created cluster files; harmless for a throwaway
  # cluster and saves seconds. Durability while running (fsync) is NOT affected.
  # --no-locale/UTF8: locale-independent, so it works on machines without locales.
  # trust auth: the server only listens on 127.0.0.1 (and a private socket dir) and is
  # thrown away after the run, so passwords would add nothing.
  if ! as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust --no-locale -E UTF8 --no-sync \
    >"$base/initdb.log" 2>&1 </dev/null; then
    show_log "$base/initdb.log" "initdb failed"
    exit 1
  fi

  # unix sockets are limited to ~107 bytes of path; fall back to TCP only if the temp dir
  # is very deep.
  local sockdir="$run"
  if ((${#run} > 90)); then sockdir=""; fi

  local attempt port
  for attempt in 1 2 3; do
    port="$(free_port)"
    : >"$logfile"
    ((EUID == 0)) && chown postgres: "$logfile"
    # Non-default settings, and why:
    #   listen_addresses/port: loopback only, on a free port, so it never clashes with a
    #     system PostgreSQL on 5432 nor with another checkout's servers.
    #   unix_socket_directories: inside the temp dir (the default /var/run/postgresql is
    #     not writable for us and belongs to the system server).
    #   max_connections=200: every vitest worker and every runtime under test opens its own
    #     pool; the default 100 is too tight when test files run in parallel.
    #   shared_buffers=128MB: explicit, modest value (the usual default) so initdb's probing
    #     of the machine cannot pick something smaller or larger behind our back.
    #   fsync/synchronous_commit/full_page_writes: deliberately left at their defaults (on):
    #     benchmarks must measure realistic durable commits.
    cat >"$data/servers.conf" <<EOF
# Written by scripts/servers.sh (see comments there).
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
max_connections = 200
shared_buffers = 128MB
EOF
    ((EUID == 0)) && chown postgres: "$data/servers.conf"
    grep -q "^include 'servers.conf'" "$data/postgresql.conf" ||
      echo "include 'servers.conf'" >>"$data/postgresql.conf"

    # stdio goes to a log: a caller reading our stdout must see EOF when we exit.
    if detached as_pg "$PG_BIN/pg_ctl" start -D "$data" -l "$logfile" -w -t "$START_TIMEOUT" \
      </dev/null >>"$base/pg_ctl.log" 2>&1; then
      local deadline=$((SECONDS + START_TIMEOUT))
      until pg_healthy "$port"; do
        if ((SECONDS >= deadline)); then
          show_log "$logfile" "postgres started but does not answer on 127.0.0.1:$port within ${START_TIMEOUT}s"
          PG_DATA="$data" PG_PORT="$port" PG_PID=""
          stop_postgres
          exit 1
        fi
        sleep 0.2
      done
      PG_PORT="$port" PG_DATA="$data"
      PG_PID="$(head -n 1 "$data/postmaster.pid")"
      log "postgres ready on 127.0.0.1:$PG_PORT (pid $PG_PID)"
      return 0
    fi
    # Probably lost a race for the port; try another one unless the log says otherwise.
    if ((attempt < 3)) && grep -qiE 'could not bind|address already in use' "$logfile" 2>/dev/null; then
      log "port $port was taken, retrying"
      continue
    fi
    show_log "$logfile" "postgres failed to start"
    [[ -f "$base/pg_ctl.log" ]] && show_log "$base/pg_ctl.log" "pg_ctl output"
    PG_DATA="$data" PG_PORT="$port" PG_PID=""
    stop_postgres
    exit 1
  done
}

# ---------------------------------------------------------------------------------------
# Redis

find_redis() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    die "redis-server/redis-cli not found; run: bash scripts/setup.sh"
  fi
}

redis_healthy() { # redis_healthy PORT
  [[ -n "$1" ]] || return 1
  [[ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]
}

redis_alive() {
  [[ -n "$REDIS_PORT" ]] && pid_is "$REDIS_PID" redis-server && redis_healthy "$REDIS_PORT"
}

stop_redis() {
  [[ -n "$REDIS_PORT$REDIS_PID" ]] || return 0
  local pid="$REDIS_PID"
  if pid_is "$pid" redis-server; then
    log "stopping redis (pid $pid, port ${REDIS_PORT:-?})"
    if [[ -n "$REDIS_PORT" ]]; then
      timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    fi
    wait_gone "$pid" 10 || true
    if pid_is "$pid" redis-server; then kill -TERM "$pid" 2>/dev/null || true; wait_gone "$pid" 10 || true; fi
    if pid_is "$pid" redis-server; then kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || true; fi
    pid_is "$pid" redis-server && log "warning: redis pid $pid is still running"
  fi
  [[ -n "$SERVERS_DIR" ]] && rm -rf -- "$SERVERS_DIR/redis"
  REDIS_PORT="" REDIS_PID=""
}

start_redis() {
  local base="$SERVERS_DIR/redis"
  local logfile="$base/redis.log" pidfile="$base/redis.pid"
  rm -rf -- "$base"
  mkdir -p "$base"

  local attempt port
  for attempt in 1 2 3; do
    port="$(free_port)"
    rm -f "$pidfile"
    : >"$logfile"
    # --save '' / --appendonly no: no persistence at all; data is throwaway and disk
    # writes would only slow tests down. Everything else is redis' default.
    # stdio redirection: see start_postgres.
    if detached redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
      --daemonize yes --pidfile "$pidfile" --logfile "$logfile" --dir "$base" \
      </dev/null >>"$logfile" 2>&1; then
      local deadline=$((SECONDS + START_TIMEOUT))
      until redis_healthy "$port" && [[ -s "$pidfile" ]]; do
        if ((SECONDS >= deadline)) ||
          { [[ -s "$pidfile" ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; } ||
          grep -qiE 'address already in use|could not create server tcp' "$logfile"; then
          break
        fi
        sleep 0.1
      done
      if redis_healthy "$port" && [[ -s "$pidfile" ]]; then
        REDIS_PORT="$port" REDIS_PID="$(cat "$pidfile")"
        log "redis ready on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"
        return 0
      fi
    fi
    local pid=""
    [[ -s "$pidfile" ]] && pid="$(cat "$pidfile")"
    if [[ -n "$pid" ]] && pid_is "$pid" redis-server; then
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 5 || true
    fi
    if ((attempt < 3)) && grep -qiE 'address already in use' "$logfile"; then
      log "port $port was taken, retrying"
      continue
    fi
    show_log "$logfile" "redis did not come up on 127.0.0.1:$port (waited up to ${START_TIMEOUT}s)"
    exit 1
  done
}

# ---------------------------------------------------------------------------------------
# Commands

cmd_start() {
  local what="${1:-all}" want_pg=0 want_redis=0
  local outcome=()
  case "$what" in
    all) want_pg=1 want_redis=1 ;;
    postgres | postgresql | pg) want_pg=1 ;;
    redis) want_redis=1 ;;
    *) usage ;;
  esac
  # Check binaries before touching anything.
  ((want_pg)) && require_pg_bin
  ((want_redis)) && find_redis
  # PG_BIN is also needed to stop a dead/stale postgres below.
  [[ -n "${PG_BIN:-}" ]] || find_pg_bin || true

  take_lock
  load_state
  # If a start fails, record whatever is still running, and do not leave an unrecorded
  # temp dir behind (the server logs were already shown).
  trap 'rc=$?; if ((rc != 0)); then save_state; [[ -f "$ENV_FILE" ]] || remove_servers_dir; fi' EXIT

  if ((want_pg)); then
    if pg_alive; then
      log "reusing postgres on 127.0.0.1:$PG_PORT (pid $PG_PID)"
      outcome+=("# reused postgres")
    else
      [[ -n "$PG_PORT$PG_PID" ]] && log "recorded postgres is gone or not answering; starting a new one"
      stop_postgres
      if ! redis_alive; then stop_redis; remove_servers_dir; fi
      ensure_servers_dir
      start_postgres
      save_state
      outcome+=("# started postgres")
    fi
  fi
  if ((want_redis)); then
    if redis_alive; then
      log "reusing redis on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"
      outcome+=("# reused redis")
    else
      [[ -n "$REDIS_PORT$REDIS_PID" ]] && log "recorded redis is gone or not answering; starting a new one"
      stop_redis
      if ! pg_alive; then stop_postgres; remove_servers_dir; fi
      ensure_servers_dir
      start_redis
      save_state
      outcome+=("# started redis")
    fi
  fi
  url_lines
  # For callers that stop only what they started (comments: harmless to `eval`).
  printf '%s\n' "${outcome[@]}"
}

cmd_stop() { # stop [postgres|redis|all]
  local what="${1:-all}"
  case "$what" in
    all | postgres | postgresql | pg | redis) ;;
    *) usage ;;
  esac
  take_lock
  load_state
  if [[ ! -f "$ENV_FILE" ]]; then
    log "nothing to stop"
    return 0
  fi
  [[ -n "${PG_BIN:-}" ]] || find_pg_bin || true
  if [[ -n "$PG_PORT$PG_PID" && -z "${PG_BIN:-}" ]]; then
    log "postgres binaries not found; stopping postgres by signal"
    PG_BIN="/nonexistent"
  fi
  if [[ "$what" != redis ]]; then stop_postgres || true; PG_PORT="" PG_PID="" PG_DATA=""; fi
  if [[ "$what" == all || "$what" == redis ]]; then stop_redis || true; REDIS_PORT="" REDIS_PID=""; fi
  if [[ -z "$PG_PORT$PG_PID$REDIS_PORT$REDIS_PID" ]]; then
    remove_servers_dir
    rm -f "$ENV_FILE"
  else
    save_state
  fi
  log "stopped $what"
}

cmd_status() {
  load_state
  if [[ ! -f "$ENV_FILE" ]]; then
    echo "no servers recorded ($ENV_FILE does not exist)"
    return 0
  fi
  [[ -n "${PG_BIN:-}" ]] || find_pg_bin || true
  echo "servers dir: ${SERVERS_DIR:-?}"
  if [[ -n "$PG_PORT" ]]; then
    if [[ -n "${PG_BIN:-}" ]] && pg_alive; then
      echo "postgres: running, pid $PG_PID, postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    else
      echo "postgres: NOT running (recorded pid ${PG_PID:-?}, port $PG_PORT)"
    fi
  else
    echo "postgres: not started"
  fi
  if [[ -n "$REDIS_PORT" ]]; then
    if command -v redis-cli >/dev/null 2>&1 && redis_alive; then
      echo "redis: running, pid $REDIS_PID, redis://127.0.0.1:$REDIS_PORT/0"
    else
      echo "redis: NOT running (recorded pid ${REDIS_PID:-?}, port $REDIS_PORT)"
    fi
  else
    echo "redis: not started"
  fi
}

cmd_env() {
  if [[ ! -f "$ENV_FILE" ]]; then
    log "no servers recorded; run: bash scripts/servers.sh start"
    exit 1
  fi
  cat "$ENV_FILE"
}

case "${1:-}" in
  start) shift; [[ $# -le 1 ]] || usage; cmd_start "$@" ;;
  stop) shift; [[ $# -le 1 ]] || usage; cmd_stop "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) usage ;;
esac
