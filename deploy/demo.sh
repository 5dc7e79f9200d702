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
# shellcheck source=deploy/demo_lib.sh
. "$ROOT/deploy/demo_lib.sh"

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

services_env
demo_env
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

logins

say "Legacy database ($SIZE): the schema before the fixes, seeded"
started=$(now)
"$PY" manage.py demo_prepare --size "$SIZE"
seed_seconds=$(seconds_since "$started")
ensure_operator

previous_pid=""
new_pid=""
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
start_processes demo

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
hold
