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
# shellcheck source=deploy/demo_lib.sh
. "$ROOT/deploy/demo_lib.sh"
server_of() { local rest=${1#*://}; echo "${1%%://*}://${rest%%/*}"; }  # the URL without its database

services_env
if [ -z "${SECOND_DATABASE_URL:-}" ]; then
  services_env second
fi
FIRST=$(server_of "$DATABASE_URL")
SECOND=$(server_of "$SECOND_DATABASE_URL")
demo_env
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

logins
ensure_operator

trap stop_all EXIT
trap 'echo; echo "interrupted: the rollout state is in ${PREFIX}_control; run again to start over"; exit 130' INT TERM
start_processes fleet
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
hold
