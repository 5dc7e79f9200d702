#!/usr/bin/env bash
# Flower, the Celery dashboard, for this project's workers: on loopback, behind basic auth.
#
#   FLOWER_BASIC_AUTH=user:password deploy/flower.sh
#
# The credentials come only from the environment: Flower reads FLOWER_BASIC_AUTH itself, so they
# never show on a command line (ps). Without them it refuses to start. Settings:
#   FLOWER_ADDRESS=127.0.0.1   listen address (loopback by default; expose it through a proxy)
#   FLOWER_PORT=5555           port
#   REDIS_URL / DJANGO_SETTINGS_MODULE   the broker and settings, as for the workers
#   PY=.venv/bin/python        the interpreter
#
# In Flower, task migrations_worker.run_slice's arguments are (run id, job name, epoch, lane):
# the run is the one at /admin/migrations_worker/jobrun/<run id>/. Task migrations_worker.fleet_step's
# are (rollout id, target, stage, attempt): the target each step worked on is in its arguments.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PY:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
ADDRESS=${FLOWER_ADDRESS:-127.0.0.1}
PORT=${FLOWER_PORT:-5555}

if [ -z "${FLOWER_BASIC_AUTH:-}" ] || [[ "$FLOWER_BASIC_AUTH" != *:?* ]]; then
  echo "[flower] error: set FLOWER_BASIC_AUTH=user:password in the environment; Flower shows task" \
       "arguments and can stop workers, so it never runs without a login" >&2
  exit 2
fi
export FLOWER_BASIC_AUTH
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-config.settings.dev}
export PYTHONPATH="$ROOT/apps/backend/src${PYTHONPATH:+:$PYTHONPATH}"
echo "[flower] http://$ADDRESS:$PORT/ (basic auth user: ${FLOWER_BASIC_AUTH%%:*})"
exec "$PY" -m celery -A migrations_worker flower --address="$ADDRESS" --port="$PORT"
