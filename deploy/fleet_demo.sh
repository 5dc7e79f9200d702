#!/usr/bin/env bash
# The fleet demo: one staged deploy rolled out across N seeded databases on two PostgreSQL servers,
# in waves (the canary first), by `manage.py fleet rollout`, with the previous release serving
# every database through the pre stage, the new release beside it and then alone, and a table per
# database at the end: what each fix did, both releases' errors and latencies, the verification.
#
#   deploy/fleet_demo.sh N [small|medium|large]     (make demo FLEET=N SIZE=small); default small
#
# The databases are PREFIX_01..PREFIX_N, alternating between the first server (DATABASE_URL's)
# and the second (SECOND_DATABASE_URL's, or `deploy/services.sh second up`); each is a fresh copy
# of its server's seeded template (seed/fleet.py: seeded once, reused while the schema and seed
# are unchanged). The control database (`default`: the rollout's state, the admin's logins) is
# PREFIX_control on the first server. Everything runs again from scratch on every call.
#
# Environment (all optional): those of deploy/demo.sh (DATABASE_URL, REDIS_URL, WORKERS=2,
# ROLLOUT_SECONDS=5, DEMO_WEB_PORT, FLOWER_PORT, DEMO_ADMIN_PASSWORD, FLOWER_BASIC_AUTH), plus
#   SECOND_DATABASE_URL          the second server (else the local one, started here)
#   FLEET_PREFIX=fleet_demo      the databases' names
#   FLEET_WAVES=1,50%,100%       the rollout's waves
#   DEMO_DIR=.local/fleet-demo   logs, credentials, the targets file, each load's result
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
FLEET=${1:?usage: deploy/fleet_demo.sh N [small|medium|large]}
SIZE=${2:-${SIZE:-small}}
PY=${PY:-$ROOT/.venv/bin/python}
DEMO_DIR=${DEMO_DIR:-$ROOT/.local/fleet-demo}
LOGS=$DEMO_DIR/logs
LOADS=$DEMO_DIR/loads
WORKERS=${WORKERS:-2}
ROLLOUT_SECONDS=${ROLLOUT_SECONDS:-5}
PREFIX=${FLEET_PREFIX:-fleet_demo}
WAVES=${FLEET_WAVES:-1,50%,100%}
[[ "$FLEET" =~ ^[1-9][0-9]*$ ]] || { echo "FLEET must be a number of databases, got '$FLEET'" >&2; exit 2; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pick_port() { if port_busy "$1"; then free_port; else echo "$1"; fi; }
wait_for_port() { for _ in $(seq 100); do port_busy "$1" && return 0; sleep 0.2; done; return 1; }
secret() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(12))'; }
server_of() { local rest=${1#*://}; echo "${1%%://*}://${rest%%/*}"; }  # the URL without its database

deploy/services.sh up
while IFS= read -r line; do export "${line?}"; done < <(deploy/services.sh env)
if [ -z "${SECOND_DATABASE_URL:-}" ]; then
  deploy/services.sh second up
  while IFS= read -r line; do export "${line?}"; done < <(deploy/services.sh second env)
fi
FIRST=$(server_of "$DATABASE_URL")
SECOND=$(server_of "$SECOND_DATABASE_URL")
export DJANGO_SETTINGS_MODULE=config.settings.dev
export PYTHONPATH="$ROOT/apps/backend/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export MW_STALE_HEARTBEAT_SECONDS=${MW_STALE_HEARTBEAT_SECONDS:-20}
mkdir -p "$LOGS" "$LOADS" "$DEMO_DIR/run"
chmod 700 "$DEMO_DIR"
rm -f "$LOADS"/*

say "$FLEET legacy database(s) ($SIZE) over two servers: $FIRST (pg-1), $SECOND (pg-2)"
started=$(now)
TARGETS=$DEMO_DIR/targets.toml
unset MW_TARGETS_FILE
"$PY" -m seed.fleet --count "$FLEET" --size "$SIZE" --prefix "$PREFIX" --label fleet=demo \
  --server "pg-1=$FIRST" --server "pg-2=$SECOND" --control "${PREFIX}_control" \
  --targets-file "$TARGETS" >"$DEMO_DIR/fleet.tsv"
column -t "$DEMO_DIR/fleet.tsv"
seed_seconds=$(seconds_since "$started")
# Every process from here on: the control database as `default`, the fleet as targets.
export DATABASE_URL="$FIRST/${PREFIX}_control" MW_TARGETS_FILE=$TARGETS
"$PY" -m celery -A migrations_worker purge -f -Q migrations,default >/dev/null 2>&1 || true

CREDENTIALS=$DEMO_DIR/credentials
if [ -f "$CREDENTIALS" ]; then
  # shellcheck disable=SC1090
  . "$CREDENTIALS"
fi
DEMO_ADMIN_PASSWORD=${DEMO_ADMIN_PASSWORD:-${SAVED_ADMIN_PASSWORD:-$(secret)}}
FLOWER_BASIC_AUTH=${FLOWER_BASIC_AUTH:-${SAVED_FLOWER_BASIC_AUTH:-ops:$(secret)}}
(umask 077; printf 'SAVED_ADMIN_PASSWORD=%q\nSAVED_FLOWER_BASIC_AUTH=%q\n' \
  "$DEMO_ADMIN_PASSWORD" "$FLOWER_BASIC_AUTH" >"$CREDENTIALS")
DEMO_ADMIN_PASSWORD=$DEMO_ADMIN_PASSWORD "$PY" manage.py shell -v 0 -c "
import os
from migrations_worker.admin import ensure_operator
ensure_operator('operator', os.environ['DEMO_ADMIN_PASSWORD'])"

pids=()
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
trap stop_all EXIT
trap 'echo; echo "interrupted: the rollout state is in ${PREFIX}_control; run again to start over"; exit 130' INT TERM
start() {  # start NAME COMMAND...: in the background, its own process group, log in $LOGS/NAME.log
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
}

say "Celery: $WORKERS worker(s) and beat; the admin; Flower (logs in $LOGS)"
for n in $(seq "$WORKERS"); do
  start "worker$n" env DB_APPLICATION_NAME="worker$n" "$PY" -m celery -A migrations_worker worker \
    -Q migrations,default --pool prefork --concurrency 1 -n "fleet$n@%h" -E --without-gossip \
    --without-mingle -l INFO --pidfile "$DEMO_DIR/run/worker$n.pid"
done
start beat env DB_APPLICATION_NAME=beat "$PY" -m celery -A migrations_worker beat \
  -s "$DEMO_DIR/run/celerybeat-schedule" -l INFO
WEB_PORT=$(pick_port "${DEMO_WEB_PORT:-8000}")
FLOWER_PORT=$(pick_port "${FLOWER_PORT:-5555}")
[ "$FLOWER_PORT" = "$WEB_PORT" ] && FLOWER_PORT=$(free_port)
export MW_FLOWER_URL="http://127.0.0.1:$FLOWER_PORT/"
start web env DB_APPLICATION_NAME=admin "$PY" manage.py runserver "127.0.0.1:$WEB_PORT" --noreload
export FLOWER_BASIC_AUTH FLOWER_PORT FLOWER_ADDRESS=127.0.0.1 PY
start flower deploy/flower.sh
wait_for_port "$WEB_PORT" || echo "[demo] warning: the admin did not come up; see $LOGS/web.log"
wait_for_port "$FLOWER_PORT" || echo "[demo] warning: Flower did not come up; see $LOGS/flower.log"
cat <<TXT

Meanwhile, look at:
  the admin:   http://127.0.0.1:$WEB_PORT/admin/   login: operator / $DEMO_ADMIN_PASSWORD
  Flower:      http://127.0.0.1:$FLOWER_PORT/   login: ${FLOWER_BASIC_AUTH%%:*} / ${FLOWER_BASIC_AUTH#*:}
  the CLI:     DJANGO_SETTINGS_MODULE=$DJANGO_SETTINGS_MODULE MW_TARGETS_FILE=$TARGETS DATABASE_URL=$DATABASE_URL \\
               $PY manage.py fleet status --watch
TXT

mapfile -t NAMES < <(cut -f1 "$DEMO_DIR/fleet.tsv")
mapfile -t URLS < <(cut -f3 "$DEMO_DIR/fleet.tsv")
traffic() {  # traffic RELEASE: that release's traffic on every database, one process each
  local i
  for i in "${!NAMES[@]}"; do
    rm -f "$LOADS/${NAMES[$i]}.$1.json" "$LOADS/$1.stop"
    setsid env DATABASE_URL="${URLS[$i]}" DB_APPLICATION_NAME="$1-release" "$PY" manage.py \
      demo_load --release "$1" --output "$LOADS/${NAMES[$i]}.$1.json" --stop-file "$LOADS/$1.stop" \
      >"$LOGS/${NAMES[$i]}.$1-release.log" 2>&1 &
    pids+=($!)
  done
}
stop_traffic() {  # stop_traffic RELEASE: stop it everywhere and let each write what it did
  touch "$LOADS/$1.stop"
  local name
  for _ in $(seq 150); do
    local done=1
    for name in "${NAMES[@]}"; do [ -s "$LOADS/$name.$1.json" ] || done=0; done
    [ "$done" = 1 ] && return 0
    sleep 0.1
  done
  echo "[demo] warning: a $1-release load did not write its result; see $LOGS" >&2
}
rollout() {  # rollout pre|post: that stage across the fleet, in waves, with live progress
  local rc=0
  DB_APPLICATION_NAME=fleet "$PY" manage.py fleet rollout --stage "$1" --select fleet=demo \
    --waves "$WAVES" --poll 1 2>>"$LOGS/fleet.log" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "the $1 rollout stopped (exit $rc); the end of its log ($LOGS/fleet.log):" >&2
    tail -n 20 "$LOGS/fleet.log" >&2
    exit "$rc"
  fi
}

say "The previous release serves traffic on all $FLEET database(s)"
traffic previous
sleep 2
deploy_started=$(now)

say "Pre-deploy stage across the fleet: fleet rollout --stage pre --waves $WAVES"
rollout pre
pre_seconds=$(seconds_since "$deploy_started")

say "Rollout of the release: the new one starts beside the previous one (${ROLLOUT_SECONDS}s), then alone"
rollout_started=$(now)
traffic new
sleep "$ROLLOUT_SECONDS"
stop_traffic previous
rollout_seconds=$(seconds_since "$rollout_started")

say "Post-deploy stage across the fleet: fleet rollout --stage post --waves $WAVES"
post_started=$(now)
rollout post
post_seconds=$(seconds_since "$post_started")
stop_traffic new

say "Summary: $FLEET database(s)"
"$PY" -m seed.fleet_report --fleet "$DEMO_DIR/fleet.tsv" --loads "$LOADS" \
  --phase "$FLEET database(s) seeded and copied=$seed_seconds" \
  --phase "pre stage (fleet rollout --stage pre)=$pre_seconds" \
  --phase "rollout of the release (both, then the new one)=$rollout_seconds" \
  --phase "post stage (fleet rollout --stage post)=$post_seconds"
if [ "${DEMO_HOLD:-auto}" != 0 ] && [ -t 0 ] && [ -t 1 ]; then
  echo
  read -r -p "The admin and Flower stay up for a look: press Enter to stop them. " _ || true
fi
