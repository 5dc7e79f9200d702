#!/usr/bin/env bash
# Local PostgreSQL and Redis on loopback, data under .local/ (git-ignored).
#
#   deploy/services.sh up       start both (initialising PostgreSQL on first use)
#   deploy/services.sh down     stop both
#   deploy/services.sh status   say what runs where; exit 1 if something is down
#   deploy/services.sh env      print the DATABASE_URL / REDIS_URL to export
#   deploy/services.sh settings print the memory settings a server starts with (sized from
#                               this machine, below)
#
#   deploy/services.sh standby up|down|status
#       a streaming standby of that PostgreSQL: `pg_basebackup -R` into a data directory of its
#       own (.local/standby), on a port of its own (STANDBY_PORT, default PG_PORT+1), known to
#       the primary as STANDBY_NAME (application_name, default local_standby). `export
#       MW_EXPECTED_STANDBYS=local_standby` and runs hold while it lags or is gone.
#
#   deploy/services.sh second up|down|status|env
#       a second, independent PostgreSQL server (.local/postgres2, port SECOND_PG_PORT, default
#       PG_PORT+2), for databases that live on another server than the first (targets, fleets);
#       `env` prints its SECOND_DATABASE_URL (database SECOND_PG_DB, default investments2).
#
# Both PostgreSQL servers log every lock wait longer than 100 ms to their server.log, with the
# waiting session's pid, application_name and database (tests/lock_waits.py reads them).
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
STANDBY_PORT=${STANDBY_PORT:-$((PG_PORT + 1))}
STANDBY_NAME=${STANDBY_NAME:-local_standby}
STANDBY_DATA=$LOCAL/standby
SECOND_PG_PORT=${SECOND_PG_PORT:-$((PG_PORT + 2))}
SECOND_PG_DB=${SECOND_PG_DB:-investments2}
SECOND_DATA=$LOCAL/postgres2

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

# Something already listens on 127.0.0.1:PORT (bash's /dev/tcp: no extra tool needed).
port_taken() { timeout 2 bash -c ': <>"/dev/tcp/127.0.0.1/$1"' port_taken "$1" 2>/dev/null; }

# A port above PORT that nothing listens on, to suggest.
free_port_after() {
  local port=$(($1 + 10))
  while port_taken "$port"; do port=$((port + 10)); done
  echo "$port"
}

# Stop before starting WHAT on PORT when another server (a second checkout's services, a local
# PostgreSQL or Redis) holds it, naming the port and the VARIABLE that moves it: otherwise the
# server fails with only "could not start server. Examine the log output.".
# PORT VARIABLE WHAT COMMAND
refuse_taken_port() {
  port_taken "$1" || return 0
  die "127.0.0.1:$1 is already taken by another server (another checkout's deploy/services.sh, or a $3 installed on this machine), so this $3 cannot listen there. Choose another port: $2=$(free_port_after "$1") deploy/services.sh $4 (use the same $2 for every later deploy/services.sh command; \`deploy/services.sh env\` then prints the URLs)"
}

server_running() { [ -s "$1/PG_VERSION" ] && as_pg "$(pg_bindir)/pg_ctl" -D "$1" status >/dev/null 2>&1; }
pg_running() { server_running "$PG_DATA"; }
# A Redis answers PONG there (in time: redis-cli waits forever on a server that never answers).
redis_running() { [ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

# The lock-wait log of the server on PORT: a session that waits for a lock longer than
# deadlock_timeout (100 ms) logs it, and again once it has the lock ("acquired ... after N ms"),
# under a line prefix naming its pid, application_name and database. That is the README's bound
# on what the migration may cost the application, held by the tests that read the log
# (tests/lock_waits.py). By ALTER SYSTEM and a reload, not by start options: a data directory
# initialised before, or a server already running, gets them as a new one does.
log_lock_waits() {
  "$(pg_bindir)/psql" -h 127.0.0.1 -p "$1" -U postgres -Atq -d postgres \
    -c "ALTER SYSTEM SET log_lock_waits = on" -c "ALTER SYSTEM SET deadlock_timeout = '100ms'" \
    -c "ALTER SYSTEM SET log_line_prefix = '%m [%p] %q[%a] [%d] '" -c "SELECT pg_reload_conf()" >/dev/null
}

# PostgreSQL's memory, sized from the machine as a production server's is (PGTune's rules for a
# web workload), not PostgreSQL's defaults (128 MB of shared_buffers, which no production server
# keeps: a table bigger than that is read through the OS cache at every pass). The machine's
# memory is MemTotal, or the cgroup's limit when lower (a container), shared among
# PG_MEMORY_SERVERS servers (default 2: this script runs two on one machine). Of each server's
# share: shared_buffers 1/4 (128 MB to 8 GB), effective_cache_size 3/4, maintenance_work_mem 1/16
# (64 MB to 2 GB, index builds), work_mem the rest of the share over 3 per connection (4 to 64
# MB), WAL 1 to 4 GB between checkpoints. The same for the demo, the tests and the bench (which
# reports the settings it ran on); `deploy/services.sh settings` prints them.
PG_MAX_CONNECTIONS=200
pg_memory_options() {
  local kib limit share mb sb ecs mwm wm
  kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
  limit=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || echo max)
  if [[ $limit =~ ^[0-9]+$ ]] && (( limit / 1024 < kib )); then kib=$(( limit / 1024 )); fi
  share=${PG_MEMORY_SERVERS:-2}
  [[ $share =~ ^[1-9][0-9]*$ ]] || die "PG_MEMORY_SERVERS must be a whole number of servers, not '$share'"
  mb=$(( kib / 1024 / share ))
  clamp() { local v=$1; (( v < $2 )) && v=$2; (( v > $3 )) && v=$3; echo "$v"; }
  sb=$(clamp $(( mb / 4 )) 128 8192)
  ecs=$(clamp $(( mb * 3 / 4 )) 512 1048576)
  mwm=$(clamp $(( mb / 16 )) 64 2048)
  wm=$(clamp $(( (mb - sb) / (PG_MAX_CONNECTIONS * 3) )) 4 64)
  echo "-c shared_buffers=${sb}MB -c effective_cache_size=${ecs}MB -c maintenance_work_mem=${mwm}MB -c work_mem=${wm}MB -c wal_buffers=16MB -c min_wal_size=1GB -c max_wal_size=4GB -c checkpoint_completion_target=0.9"
}

# A PostgreSQL server on loopback: DATA PORT DATABASE VARIABLE COMMAND (initialised on first
# use, the database created if missing; VARIABLE and COMMAND: what to run on another port). Both
# servers of this script start the same way.
server_up() {
  local data=$1 port=$2 db=$3 bin memory; bin=$(pg_bindir); memory=$(pg_memory_options)
  server_running "$data" || refuse_taken_port "$port" "$4" PostgreSQL "$5"
  mkdir -p "$LOCAL"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    # -m 0700: install -d also resets the mode of an existing directory, and PostgreSQL refuses
    # to start on a data directory with group/other access.
    install -d -m 0700 -o postgres -g postgres "$data"
    install -d -o postgres -g postgres "$PG_RUN"
  else
    mkdir -p "$data" "$PG_RUN"
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    say "initialising PostgreSQL in $data"
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  if server_running "$data"; then
    say "PostgreSQL already running on 127.0.0.1:$port"
  else
    as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start -o \
      "-p $port -c listen_addresses=127.0.0.1 -k $PG_RUN -c max_connections=$PG_MAX_CONNECTIONS $memory -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null ||
      { refuse_taken_port "$port" "$4" PostgreSQL "$5"  # taken meanwhile
        die "PostgreSQL did not start on 127.0.0.1:$port; the end of $data/server.log: $(tail -n 5 "$data/server.log" 2>/dev/null)"; }
    say "PostgreSQL up on 127.0.0.1:$port (log: $data/server.log)"
  fi
  log_lock_waits "$port"
  if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname='$db'" postgres | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    say "created database $db"
  fi
}

server_down() {
  if pg_bindir >/dev/null && server_running "$1"; then
    as_pg "$(pg_bindir)/pg_ctl" -D "$1" -m fast -w stop >/dev/null
    say "$2 stopped"
  fi
}

pg_up() { server_up "$PG_DATA" "$PG_PORT" "$PG_DB" PG_PORT up; }

redis_up() {
  mkdir -p "$REDIS_DIR"
  if redis_running; then
    say "Redis already running on 127.0.0.1:$REDIS_PORT"
    return 0
  fi
  refuse_taken_port "$REDIS_PORT" REDIS_PORT Redis up
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
  standby_down
  server_down "$SECOND_DATA" "second PostgreSQL"
  if [ -z "${DATABASE_URL:-}" ]; then server_down "$PG_DATA" "PostgreSQL"; fi
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
  if [ -z "${DATABASE_URL:-}" ] && [ -s "$STANDBY_DATA/PG_VERSION" ]; then
    standby_status || rc=1
  fi
  if [ -s "$SECOND_DATA/PG_VERSION" ]; then
    second_status || rc=1
  fi
  return $rc
}

cmd_env() {
  echo "DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB}"
  echo "REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
}

# -- the standby ------------------------------------------------------------------------------

standby_running() {
  [ -s "$STANDBY_DATA/PG_VERSION" ] && as_pg "$(pg_bindir)/pg_ctl" -D "$STANDBY_DATA" status >/dev/null 2>&1
}

# The primary's view of the standby: "state bytes-behind", or nothing when it is not connected.
standby_row() {
  echo "SELECT state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication WHERE application_name = :'name'" |
    "$(pg_bindir)/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atq -F ' ' -v name="$STANDBY_NAME" postgres 2>/dev/null || true
}

standby_up() {
  [ -z "${DATABASE_URL:-}" ] || die "DATABASE_URL is set: the standby is made from this script's own PostgreSQL only (for yours: pg_basebackup -R)"
  [[ "$STANDBY_NAME" =~ ^[A-Za-z0-9_.-]{1,63}$ ]] || die "STANDBY_NAME must be letters, digits, _ . - (an application_name), got '$STANDBY_NAME'"
  [ "$STANDBY_PORT" != "$PG_PORT" ] || die "STANDBY_PORT must differ from PG_PORT ($PG_PORT)"
  ensure_binaries
  local bin; bin=$(pg_bindir)
  pg_running || die "PostgreSQL is not running on 127.0.0.1:$PG_PORT: start it first (deploy/services.sh up)"
  if [ ! -s "$STANDBY_DATA/PG_VERSION" ]; then
    say "copying the primary into $STANDBY_DATA (pg_basebackup -R, application_name $STANDBY_NAME)"
    if [ "$(id -u)" -eq 0 ]; then
      install -d -m 0700 -o postgres -g postgres "$STANDBY_DATA"
    else
      mkdir -p "$STANDBY_DATA" && chmod 0700 "$STANDBY_DATA"
    fi
    # -R writes primary_conninfo (with the application_name) and standby.signal; -X stream
    # copies the WAL written meanwhile, so the copy starts consistent.
    as_pg "$bin/pg_basebackup" -D "$STANDBY_DATA" -R -X stream -c fast \
      -d "host=127.0.0.1 port=$PG_PORT user=postgres application_name=$STANDBY_NAME" >/dev/null
    # Report replay every second (default 10 s): the engine reads the lag from these reports.
    echo "wal_receiver_status_interval = '1s'" | as_pg tee -a "$STANDBY_DATA/postgresql.auto.conf" >/dev/null
  fi
  local memory; memory=$(pg_memory_options)
  if standby_running; then
    say "standby already running on 127.0.0.1:$STANDBY_PORT"
  else
    refuse_taken_port "$STANDBY_PORT" STANDBY_PORT PostgreSQL "standby up"
    # max_connections as on the primary: a standby refuses to replay with fewer.
    as_pg "$bin/pg_ctl" -D "$STANDBY_DATA" -l "$STANDBY_DATA/standby.log" -w -t 60 start -o \
      "-p $STANDBY_PORT -c listen_addresses=127.0.0.1 -k $PG_RUN -c max_connections=$PG_MAX_CONNECTIONS $memory -c fsync=off -c full_page_writes=off" >/dev/null ||
      die "the standby did not start; see $STANDBY_DATA/standby.log"
  fi
  local row=""
  for _ in $(seq 100); do
    row=$(standby_row)
    [ "${row%% *}" = "streaming" ] && break
    sleep 0.2
  done
  [ "${row%% *}" = "streaming" ] || die "the standby started but does not stream from 127.0.0.1:$PG_PORT (pg_stat_replication: '${row:-no row}'); see $STANDBY_DATA/standby.log"
  say "standby '$STANDBY_NAME' streaming on 127.0.0.1:$STANDBY_PORT (log: $STANDBY_DATA/standby.log)"
  say "runs hold while it lags or is gone with: export MW_EXPECTED_STANDBYS=$STANDBY_NAME"
}

standby_down() {
  if [ -z "${DATABASE_URL:-}" ] && pg_bindir >/dev/null && standby_running; then
    as_pg "$(pg_bindir)/pg_ctl" -D "$STANDBY_DATA" -m fast -w stop >/dev/null
    say "standby stopped"
  fi
}

standby_status() {
  if ! standby_running; then
    if [ -s "$STANDBY_DATA/PG_VERSION" ]; then say "standby: stopped"; else say "standby: none (deploy/services.sh standby up)"; fi
    return 1
  fi
  local row; row=$(standby_row)
  if [ -z "$row" ]; then
    say "standby: running on 127.0.0.1:$STANDBY_PORT but not connected to the primary as '$STANDBY_NAME'"
    return 1
  fi
  say "standby: running on 127.0.0.1:$STANDBY_PORT, ${row%% *} as '$STANDBY_NAME', ${row#* } bytes behind"
}

cmd_standby() {
  case "${1:-}" in
    up) standby_up ;;
    down) standby_down ;;
    status) standby_status ;;
    *) echo "usage: $0 standby up|down|status" >&2; exit 2 ;;
  esac
}

# -- the second server ------------------------------------------------------------------------

second_up() {
  [ "$SECOND_PG_PORT" != "$PG_PORT" ] && [ "$SECOND_PG_PORT" != "$STANDBY_PORT" ] ||
    die "SECOND_PG_PORT ($SECOND_PG_PORT) must differ from PG_PORT ($PG_PORT) and STANDBY_PORT ($STANDBY_PORT)"
  ensure_binaries
  server_up "$SECOND_DATA" "$SECOND_PG_PORT" "$SECOND_PG_DB" SECOND_PG_PORT "second up"
}

second_status() {
  if server_running "$SECOND_DATA"; then
    say "second postgres: running on 127.0.0.1:$SECOND_PG_PORT"
  else
    say "second postgres: stopped"; return 1
  fi
}

cmd_second() {
  case "${1:-}" in
    up) second_up ;;
    down) server_down "$SECOND_DATA" "second PostgreSQL" ;;
    status) second_status ;;
    env) echo "SECOND_DATABASE_URL=postgres://postgres@127.0.0.1:$SECOND_PG_PORT/$SECOND_PG_DB" ;;
    *) echo "usage: $0 second up|down|status|env" >&2; exit 2 ;;
  esac
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  settings) pg_memory_options | tr ' ' '\n' | grep -v '^-c$' ;;
  standby) cmd_standby "${2:-}" ;;
  second) cmd_second "${2:-}" ;;
  *) echo "usage: $0 up|down|status|env|settings|standby up|down|status|second up|down|status|env" >&2; exit 2 ;;
esac
