# Helpers of the demos, sourced by deploy/demo.sh and deploy/fleet_demo.sh (not run on its own).
# They read the caller's PY, DEMO_DIR, LOGS and WORKERS when called, and keep what they start
# in the caller's `pids`.

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

services_env() {  # services_env [second]: those services up (or as given), their URLs exported
  deploy/services.sh "$@" up
  while IFS= read -r line; do export "${line?}"; done < <(deploy/services.sh "$@" env)
}

demo_env() {  # what every process of a demo shares
  export DJANGO_SETTINGS_MODULE=config.settings.dev
  # The backend's apps and settings, for processes not started through manage.py (celery, flower).
  export PYTHONPATH="$ROOT/apps/backend/src${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1  # progress lines as they happen, also through a pipe (make demo | tee)
  # Beat re-sends a run whose workers went quiet after this long: after a Ctrl-C, the rerun's
  # workers pick the jobs up within about this many seconds.
  export MW_STALE_HEARTBEAT_SECONDS=${MW_STALE_HEARTBEAT_SECONDS:-20}
}

logins() {  # the admin's and Flower's: from the environment, or generated once and kept
  CREDENTIALS=$DEMO_DIR/credentials
  if [ -f "$CREDENTIALS" ]; then
    # shellcheck disable=SC1090
    . "$CREDENTIALS"
  fi
  DEMO_ADMIN_PASSWORD=${DEMO_ADMIN_PASSWORD:-${SAVED_ADMIN_PASSWORD:-$(secret)}}
  FLOWER_BASIC_AUTH=${FLOWER_BASIC_AUTH:-${SAVED_FLOWER_BASIC_AUTH:-ops:$(secret)}}
  (umask 077; printf 'SAVED_ADMIN_PASSWORD=%q\nSAVED_FLOWER_BASIC_AUTH=%q\n' \
    "$DEMO_ADMIN_PASSWORD" "$FLOWER_BASIC_AUTH" >"$CREDENTIALS")
}

ensure_operator() {  # the admin login `operator`, in the database DATABASE_URL names
  DEMO_ADMIN_PASSWORD=$DEMO_ADMIN_PASSWORD "$PY" manage.py shell -v 0 -c "
import os
from migrations_worker.admin import ensure_operator
ensure_operator('operator', os.environ['DEMO_ADMIN_PASSWORD'])"
}

# Everything started from here on runs in its own process group, stopped on the way out.
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
  # A worker still inside a slice after 5 s is killed: its batch rolls back and is redone.
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
start() {  # start NAME COMMAND...: in the background, its own process group, log in $LOGS/NAME.log
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
}

start_processes() {  # start_processes NODE: the workers (NODE1@, NODE2@...), beat, admin, Flower
  say "Celery: $WORKERS worker(s) and beat; the admin; Flower (logs in $LOGS)"
  # Prefork with one child, as in production: the parent keeps sending events and heartbeats while
  # the child works a slice, so Flower shows the worker online with its active task.
  # DB_APPLICATION_NAME tells, in pg_stat_activity and the lock-wait report, who waited on whom.
  local n
  for n in $(seq "$WORKERS"); do
    start "worker$n" env DB_APPLICATION_NAME="worker$n" "$PY" -m celery -A migrations_worker worker \
      -Q migrations,default --pool prefork --concurrency 1 -n "$1$n@%h" -E --without-gossip \
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
}

hold() {  # at the end, keep the admin and Flower up until Enter (DEMO_HOLD=0: never)
  if [ "${DEMO_HOLD:-auto}" != 0 ] && [ -t 0 ] && [ -t 1 ]; then
    echo
    read -r -p "The admin and Flower stay up for a look: press Enter to stop them. " _ || true
  fi
}
