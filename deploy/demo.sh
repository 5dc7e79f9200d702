#!/usr/bin/env bash
# The main job, end to end: local PostgreSQL and Redis, a seeded legacy database, Celery workers
# and beat, the admin and Flower to watch them, then a rolling deploy with live progress per job:
# the previous release (the legacy models) serves traffic through the pre-deploy stage, the new
# release starts beside it (the rollout), then runs alone through the post-deploy stage; and a
# summary: what each fix did, the verification (every write of either release kept), how long
# each phase took, each release's latencies and errors, and the longest lock wait.
#
#   deploy/demo.sh [small|medium|large]     (make demo SIZE=small); default medium, ~1-2 minutes
#   RESET=1 deploy/demo.sh                  start again from an empty database: the demo's own
#                                           local one only (refused, exit 2, when DATABASE_URL
#                                           points anywhere else)
#
# Ctrl-C stops everything this script started; the jobs' progress is in PostgreSQL, so running
# the same command again continues where it stopped.
#
# Environment (all optional):
#   DATABASE_URL, REDIS_URL     services to use instead of the local ones (the database is
#                               created when the server has none of that name)
#   DEMO_ADMIN_PASSWORD         password of the admin login `operator` (else generated, kept in
#                               $DEMO_DIR/credentials, mode 600)
#   FLOWER_BASIC_AUTH           user:password for Flower (else ops:<generated>, kept likewise)
#   DEMO_WEB_PORT=8000          the admin's port; FLOWER_PORT=5555 Flower's (a free one is
#                               taken when it is busy)
#   WORKERS=2                   Celery worker processes
#   ROLLOUT_SECONDS=5           how long both releases run side by side
#   DEMO_DIR=.local/demo        logs, credentials, the load's result
#   DEMO_HOLD=auto              at the end, keep the admin and Flower up until Enter (auto: when
#                               the terminal is interactive; 0: never)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SIZE=${1:-${SIZE:-medium}}
PY=${PY:-$ROOT/.venv/bin/python}
DEMO_DIR=${DEMO_DIR:-$ROOT/.local/demo}
LOGS=$DEMO_DIR/logs
WORKERS=${WORKERS:-2}
ROLLOUT_SECONDS=${ROLLOUT_SECONDS:-5}
HOLD=${DEMO_HOLD:-auto}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pick_port() {  # the asked-for port, or a free one if something else listens there
  if port_busy "$1"; then free_port; else echo "$1"; fi
}
wait_for_port() {
  for _ in $(seq 100); do port_busy "$1" && return 0; sleep 0.2; done
  return 1
}
secret() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(12))'; }

# RESET=1 drops every table of the database: only of the one services.sh keeps for the demo,
# never of whatever DATABASE_URL names (a shared server, a staging copy), checked before anything.
if [ "${RESET:-0}" = 1 ] && [ -n "${DATABASE_URL:-}" ]; then
  own=$(env -u DATABASE_URL deploy/services.sh env | sed -n 's/^DATABASE_URL=//p')
  if [ "$DATABASE_URL" != "$own" ]; then
    shown=$(sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#' <<<"$DATABASE_URL")  # no password in the message
    printf '[demo] RESET=1 refused: it empties only the demo'"'"'s own local database (%s), and DATABASE_URL points elsewhere (%s).\n' \
      "$own" "$shown" >&2
    printf '[demo] Unset DATABASE_URL to reset the local one, or empty that database yourself (dropdb/createdb) and run again without RESET.\n' >&2
    exit 2
  fi
fi

deploy/services.sh up
while IFS= read -r line; do export "${line?}"; done < <(deploy/services.sh env)
export DJANGO_SETTINGS_MODULE=config.settings.dev
# The backend's apps and settings, for processes not started through manage.py (celery, flower).
export PYTHONPATH="$ROOT/apps/backend/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # progress lines as they happen, also through a pipe (make demo | tee)
# Beat re-sends a run whose workers went quiet after this long: after a Ctrl-C, the rerun's
# workers pick the jobs up within about this many seconds.
export MW_STALE_HEARTBEAT_SECONDS=${MW_STALE_HEARTBEAT_SECONDS:-20}
mkdir -p "$LOGS" "$DEMO_DIR/run"
chmod 700 "$DEMO_DIR"

# The database itself, when the server has none of that name yet.
"$PY" - "$DATABASE_URL" <<'PY'
import sys

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

params = conninfo_to_dict(sys.argv[1])
name = params.get("dbname") or "postgres"
with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as server:
    if not server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"[demo] created database {name}")
PY

if [ "${RESET:-0}" = 1 ]; then
  say "RESET=1: emptying the demo database and its queues"
  "$PY" manage.py shell -v 0 -c "
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute('DROP SCHEMA public CASCADE; CREATE SCHEMA public;')"
  "$PY" -m celery -A migrations_worker purge -f -Q migrations,default >/dev/null 2>&1 || true
fi

# Logins for the admin and Flower: from the environment, or generated once and kept.
CREDENTIALS=$DEMO_DIR/credentials
if [ -f "$CREDENTIALS" ]; then
  # shellcheck disable=SC1090
  . "$CREDENTIALS"
fi
DEMO_ADMIN_PASSWORD=${DEMO_ADMIN_PASSWORD:-${SAVED_ADMIN_PASSWORD:-$(secret)}}
FLOWER_BASIC_AUTH=${FLOWER_BASIC_AUTH:-${SAVED_FLOWER_BASIC_AUTH:-ops:$(secret)}}
(umask 077; printf 'SAVED_ADMIN_PASSWORD=%q\nSAVED_FLOWER_BASIC_AUTH=%q\n' \
  "$DEMO_ADMIN_PASSWORD" "$FLOWER_BASIC_AUTH" >"$CREDENTIALS")

say "Legacy database ($SIZE): the schema before the fixes, seeded"
started=$(now)
"$PY" manage.py demo_prepare --size "$SIZE"
seed_seconds=$(seconds_since "$started")
DEMO_ADMIN_PASSWORD=$DEMO_ADMIN_PASSWORD "$PY" manage.py shell -v 0 -c "
import os
from migrations_worker.admin import ensure_operator
ensure_operator('operator', os.environ['DEMO_ADMIN_PASSWORD'])"

# Everything started from here on runs in its own process group, stopped on the way out.
pids=()
previous_pid=""
new_pid=""
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  # A worker still inside a slice after 5 s is killed: its batch rolls back and is redone.
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
trap stop_all EXIT
finished=0
interrupted() {
  echo
  if [ "$finished" = 1 ]; then
    echo "stopping the admin, Flower and the workers"
  else
    echo "interrupted: progress is saved in the database; run the same command again to continue"
  fi
  exit 130
}
trap interrupted INT TERM
start() {  # start NAME COMMAND...: in the background, its own process group, log in $LOGS/NAME.log
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
}

say "Celery: $WORKERS worker(s) and beat; the admin; Flower (logs in $LOGS)"
# Prefork with one child, as in production: the parent keeps sending events and heartbeats while
# the child works a slice, so Flower shows the worker online with its active task.
# DB_APPLICATION_NAME tells, in pg_stat_activity and the lock-wait report, who waited on whom.
for n in $(seq "$WORKERS"); do
  start "worker$n" env DB_APPLICATION_NAME="worker$n" "$PY" -m celery -A migrations_worker worker \
    -Q migrations,default --pool prefork --concurrency 1 -n "demo$n@%h" -E --without-gossip \
    --without-mingle -l INFO --pidfile "$DEMO_DIR/run/worker$n.pid"
done
start beat env DB_APPLICATION_NAME=beat "$PY" -m celery -A migrations_worker beat \
  -s "$DEMO_DIR/run/celerybeat-schedule" -l INFO
WEB_PORT=$(pick_port "${DEMO_WEB_PORT:-8000}")
FLOWER_PORT=$(pick_port "${FLOWER_PORT:-5555}")
[ "$FLOWER_PORT" = "$WEB_PORT" ] && FLOWER_PORT=$(free_port)
export MW_FLOWER_URL="http://127.0.0.1:$FLOWER_PORT/"
start web env DB_APPLICATION_NAME=admin "$PY" manage.py runserver "127.0.0.1:$WEB_PORT" --noreload
# Flower reads its login from the environment, so it never shows on a command line.
export FLOWER_BASIC_AUTH FLOWER_PORT FLOWER_ADDRESS=127.0.0.1 PY
start flower deploy/flower.sh
wait_for_port "$WEB_PORT" || echo "[demo] warning: the admin did not come up; see $LOGS/web.log"
wait_for_port "$FLOWER_PORT" || echo "[demo] warning: Flower did not come up; see $LOGS/flower.log"

cat <<TXT

Meanwhile, look at:
  the admin:   http://127.0.0.1:$WEB_PORT/admin/migrations_worker/jobrun/
               login: operator / $DEMO_ADMIN_PASSWORD
  Flower:      http://127.0.0.1:$FLOWER_PORT/   login: ${FLOWER_BASIC_AUTH%%:*} / ${FLOWER_BASIC_AUTH#*:}
  status API:  http://127.0.0.1:$WEB_PORT/ops/runs.json and /ops/metrics (with the admin login)
  the CLI:     DJANGO_SETTINGS_MODULE=$DJANGO_SETTINGS_MODULE $PY manage.py backfill status --watch
  logs:        $LOGS (one line per batch and per status change)
TXT

traffic() {  # traffic RELEASE: that release's application traffic until its stop file appears
  rm -f "$DEMO_DIR/$1.json" "$DEMO_DIR/$1.stop"
  setsid env DB_APPLICATION_NAME="$1-release" "$PY" manage.py demo_load --release "$1" \
    --output "$DEMO_DIR/$1.json" --stop-file "$DEMO_DIR/$1.stop" >"$LOGS/$1-release.log" 2>&1 &
  pids+=($!)
  eval "${1}_pid=$!"
}
stop_traffic() {  # stop_traffic RELEASE: stop it and let it write what it did
  local pid_var="${1}_pid"
  touch "$DEMO_DIR/$1.stop"
  for _ in $(seq 100); do kill -0 "${!pid_var}" 2>/dev/null || break; sleep 0.1; done
}
deploy_stage() {  # deploy_stage pre|post: that stage of the deploy, waiting at each gate
  local rc=0
  DB_APPLICATION_NAME=migrate_online "$PY" manage.py migrate_online --stage "$1" --wait \
    2>>"$LOGS/deploy.log" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo
    echo "the $1-deploy stage failed (exit $rc); the end of its log ($LOGS/deploy.log):" >&2
    tail -n 20 "$LOGS/deploy.log" >&2
    exit "$rc"
  fi
}

say "The previous release serves traffic (the legacy models: sector/industry, duplicates named)"
traffic previous
deploy_started=$(now)

say "Pre-deploy stage: the expand migrations and their data jobs, the previous release writing on"
deploy_stage pre
pre_seconds=$(seconds_since "$deploy_started")

say "Rollout: the new release starts beside the previous one (${ROLLOUT_SECONDS}s), then alone"
rollout_started=$(now)
traffic new
sleep "$ROLLOUT_SECONDS"
stop_traffic previous
rollout_seconds=$(seconds_since "$rollout_started")

say "Post-deploy stage: the contract migrations, once only the new release runs"
post_started=$(now)
deploy_stage post
post_seconds=$(seconds_since "$post_started")
stop_traffic new

say "Summary"
"$PY" manage.py demo_report \
  --phase "legacy schema and seed=$seed_seconds" \
  --phase "pre-deploy stage (migrate_online --stage pre --wait)=$pre_seconds" \
  --phase "rollout (both releases, then the new one)=$rollout_seconds" \
  --phase "post-deploy stage (migrate_online --stage post --wait)=$post_seconds" \
  --deploy-started "$deploy_started" \
  --load "$DEMO_DIR/previous.json" --load "$DEMO_DIR/new.json"

finished=1
if [ "$HOLD" != 0 ] && [ -t 0 ] && [ -t 1 ]; then
  echo
  read -r -p "The admin and Flower stay up for a look: press Enter to stop them. " _ || true
fi
