#!/usr/bin/env bash
# The production deploy step (docker-compose's one-shot `migrate` service), safe by construction:
#
#   1. wait for the database
#   2. preflight:  warn about (optionally wait out) sessions that would stall DDL
#   3. migrate:    `migrate_online` applies every migration it safely can, enqueues the data jobs
#                  the migrations ask for, and stops cleanly at a gate whose job is still running
#                  (or, with DEPLOY_WAIT=1, waits for it with progress and goes on)
#   4. postflight: fail loudly if any index is INVALID or any constraint left NOT VALID
#
# Settings come from the environment (DATABASE_URL, REDIS_URL, DJANGO_SETTINGS_MODULE, ...), plus:
#   DEPLOY_DB_TIMEOUT=60        seconds to wait for the database
#   DEPLOY_MIN_TXN_AGE=60       a transaction older than this may stall DDL
#   DEPLOY_SESSION_WAIT=0       seconds to wait for such sessions to end (0: warn only)
#   DEPLOY_STRICT_PREFLIGHT=0   1: fail (exit 7) if they are still there after the wait
#   DEPLOY_WAIT=0               1: wait at the gates for the data jobs instead of stopping
#   DEPLOY_WAIT_TIMEOUT=        with DEPLOY_WAIT=1: give up (exit 5) after this many seconds
#   PYTHON=python               the interpreter that runs manage.py
#
# Exit codes (those of `manage.py migrate_online`): 0 deployed (migrations behind a running job's
# gate stay pending; the next deploy or `migrate_online --wait` applies them), 1 a migration or
# the script failed, 4 a gate's job has failed (operator: `backfill retry JOB`), 5 timed out
# (database, or DEPLOY_WAIT_TIMEOUT), 7 unsafe database state (strict preflight, or postflight).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
DEPLOY_DB_TIMEOUT=${DEPLOY_DB_TIMEOUT:-60}
DEPLOY_MIN_TXN_AGE=${DEPLOY_MIN_TXN_AGE:-60}
DEPLOY_SESSION_WAIT=${DEPLOY_SESSION_WAIT:-0}
DEPLOY_STRICT_PREFLIGHT=${DEPLOY_STRICT_PREFLIGHT:-0}
DEPLOY_WAIT=${DEPLOY_WAIT:-0}
DEPLOY_WAIT_TIMEOUT=${DEPLOY_WAIT_TIMEOUT:-}

stage() { printf '\n[deploy] === %s ===\n' "$*"; }
say() { printf '[deploy] %s\n' "$*"; }
fail() { printf '[deploy] FAILED (exit %s): %s\n' "$1" "$2" >&2; exit "$1"; }
manage() { "$PYTHON" manage.py "$@"; }

stage "1/4 database"
rc=0; manage migrate_online --wait-for-db "$DEPLOY_DB_TIMEOUT" || rc=$?
[ "$rc" -eq 0 ] || fail "$rc" "the database did not accept connections within ${DEPLOY_DB_TIMEOUT}s"

stage "2/4 preflight"
preflight=(--preflight --min-age "$DEPLOY_MIN_TXN_AGE" --session-wait "$DEPLOY_SESSION_WAIT")
[ "$DEPLOY_STRICT_PREFLIGHT" = 1 ] && preflight+=(--strict)
rc=0; manage migrate_online "${preflight[@]}" || rc=$?
[ "$rc" -eq 0 ] || fail "$rc" "sessions that would stall DDL are still open"

stage "3/4 migrate"
migrate=()
if [ "$DEPLOY_WAIT" = 1 ]; then
  migrate+=(--wait)
  [ -n "$DEPLOY_WAIT_TIMEOUT" ] && migrate+=(--timeout "$DEPLOY_WAIT_TIMEOUT")
fi
migrate_rc=0; manage migrate_online ${migrate[@]+"${migrate[@]}"} || migrate_rc=$?

# Also after a failed migration: it tells what a half-way stop left behind.
stage "4/4 postflight"
postflight_rc=0; manage migrate_online --postflight || postflight_rc=$?

[ "$migrate_rc" -eq 0 ] || fail "$migrate_rc" "migrate_online did not finish (see above)"
[ "$postflight_rc" -eq 0 ] || fail "$postflight_rc" "the schema was left half-migrated (see above)"

pending=0; manage migrate_online --check >/dev/null 2>&1 || pending=$?
if [ "$pending" -eq 8 ]; then
  say "deployed; some migrations wait behind data jobs: \`python manage.py migrate_online --plan\` lists them"
else
  say "deployed; nothing pending"
fi
