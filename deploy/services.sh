#!/usr/bin/env bash
# Local PostgreSQL and Redis on loopback, data under .local/ (git-ignored).
#
#   deploy/services.sh up       start both (initialising PostgreSQL on first use)
#   deploy/services.sh down     stop both
#   deploy/services.sh status   say what runs where; exit 1 if something is down
#   deploy/services.sh env      print the DATABASE_URL / REDIS_URL to export
#
# When DATABASE_URL or REDIS_URL is already set, that service is taken as provided and left
# alone. Binaries come from the machine; as root, missing ones are installed with apt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=${LOCAL_SERVICES_DIR:-$ROOT/.local}
PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
PG_DB=${PG_DB:-investments}
PG_DATA=$LOCAL/postgres
PG_RUN=$LOCAL/run
REDIS_DIR=$LOCAL/redis

say() { printf '[services] %s\n' "$*"; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 2; }

pg_bindir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v pg_ctl)"; return 0; }
  return 1
}

# Only the binaries of the services this machine runs: an external one (URL set) needs none.
ensure_binaries() {
  local missing=()
  [ -n "${DATABASE_URL:-}" ] || pg_bindir >/dev/null || missing+=(postgresql)
  [ -n "${REDIS_URL:-}" ] || command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "missing ${missing[*]}: install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}), or set DATABASE_URL and REDIS_URL to running services"
  fi
}

# PostgreSQL refuses to run as root, so as root it runs as the 'postgres' system user.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_running() { as_pg "$(pg_bindir)/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
redis_running() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; }

pg_up() {
  local bin; bin=$(pg_bindir)
  mkdir -p "$LOCAL"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    # -m 0700: install -d also resets the mode of an existing directory, and PostgreSQL refuses
    # to start on a data directory with group/other access.
    install -d -m 0700 -o postgres -g postgres "$PG_DATA"
    install -d -o postgres -g postgres "$PG_RUN"
  else
    mkdir -p "$PG_DATA" "$PG_RUN"
  fi
  if [ ! -s "$PG_DATA/PG_VERSION" ]; then
    say "initialising PostgreSQL in $PG_DATA"
    as_pg "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  if pg_running; then
    say "PostgreSQL already running on 127.0.0.1:$PG_PORT"
  else
    as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 start -o \
      "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $PG_RUN -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null
    say "PostgreSQL up on 127.0.0.1:$PG_PORT (log: $PG_DATA/server.log)"
  fi
  if ! "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" postgres | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$PG_DB"
    say "created database $PG_DB"
  fi
}

redis_up() {
  mkdir -p "$REDIS_DIR"
  if redis_running; then
    say "Redis already running on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" --daemonize yes \
    --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" --save "" --appendonly no
  for _ in $(seq 50); do redis_running && break; sleep 0.1; done
  redis_running || die "Redis did not start; see $REDIS_DIR/redis.log"
  say "Redis up on 127.0.0.1:$REDIS_PORT"
}

cmd_up() {
  ensure_binaries
  if [ -n "${DATABASE_URL:-}" ]; then say "DATABASE_URL is set: using it, not starting PostgreSQL"; else pg_up; fi
  if [ -n "${REDIS_URL:-}" ]; then say "REDIS_URL is set: using it, not starting Redis"; else redis_up; fi
}

cmd_down() {
  if [ -z "${DATABASE_URL:-}" ] && [ -s "$PG_DATA/PG_VERSION" ] && pg_bindir >/dev/null && pg_running; then
    as_pg "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
    say "PostgreSQL stopped"
  fi
  if [ -z "${REDIS_URL:-}" ] && command -v redis-cli >/dev/null 2>&1 && redis_running; then
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    say "Redis stopped"
  fi
}

cmd_status() {
  local rc=0
  if [ -n "${DATABASE_URL:-}" ]; then
    say "postgres: external (DATABASE_URL)"
  elif [ -s "$PG_DATA/PG_VERSION" ] && pg_bindir >/dev/null && pg_running; then
    say "postgres: running on 127.0.0.1:$PG_PORT"
  else
    say "postgres: stopped"; rc=1
  fi
  if [ -n "${REDIS_URL:-}" ]; then
    say "redis: external (REDIS_URL)"
  elif command -v redis-cli >/dev/null 2>&1 && redis_running; then
    say "redis: running on 127.0.0.1:$REDIS_PORT"
  else
    say "redis: stopped"; rc=1
  fi
  return $rc
}

cmd_env() {
  echo "DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB}"
  echo "REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
