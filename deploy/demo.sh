#!/usr/bin/env bash
# The main job, end to end: local PostgreSQL and Redis, a seeded legacy database, Celery
# workers and beat, then the online migration with live progress, and a report at the end.
#
#   deploy/demo.sh [small|medium|large]     (make demo SIZE=medium)
#   RESET=1 deploy/demo.sh                  start again from an empty database
#
# Ctrl-C stops the workers and the deploy step; the jobs' progress is in PostgreSQL, so running
# the script again continues where it stopped.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SIZE=${1:-small}
PY=${PY:-$ROOT/.venv/bin/python}
LOGS=$ROOT/.local/logs
WORKERS=${WORKERS:-2}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

deploy/services.sh up
while IFS= read -r line; do export "${line?}"; done < <(deploy/services.sh env)
export DJANGO_SETTINGS_MODULE=config.settings.dev
mkdir -p "$LOGS"

if [ "${RESET:-0}" = 1 ]; then
  say "RESET=1: emptying the demo database"
  psql "$DATABASE_URL" -qc "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
fi

say "Legacy database ($SIZE)"
started=$(date +%s)
"$PY" manage.py demo_prepare --size "$SIZE"
seeded=$(date +%s)

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; echo "interrupted: progress is saved; run the same command again to continue"; exit 130' INT TERM

say "Celery: $WORKERS worker(s) and beat (logs in .local/logs)"
for n in $(seq "$WORKERS"); do
  setsid "$PY" -m celery -A migrations_worker worker -Q migrations,default --pool solo \
    -n "demo$n@%h" --without-gossip --without-mingle -l INFO >"$LOGS/worker$n.log" 2>&1 &
  pids+=($!)
done
setsid "$PY" -m celery -A migrations_worker beat -s "$ROOT/.local/celerybeat-schedule" \
  -l INFO >"$LOGS/beat.log" 2>&1 &
pids+=($!)

cat <<TXT
Meanwhile, look at:
  the jobs:   $PY manage.py backfill status --watch
  the admin:  $PY manage.py runserver, then http://127.0.0.1:8000/admin/ (createsuperuser first)
TXT

say "Deploy step: migrate online, waiting at each gate for its job"
"$PY" manage.py migrate_online --wait
migrated=$(date +%s)

say "Report"
"$PY" manage.py demo_report
echo
echo "legacy database ready in $((seeded - started))s; online migration took $((migrated - seeded))s"
