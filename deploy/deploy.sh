#!/usr/bin/env bash
# The production deploy step, in the two stages of a rolling deploy:
#
#   deploy/deploy.sh pre    BEFORE the new release starts (docker-compose's one-shot `migrate`):
#                           the expand migrations, safe while the previous release serves
#                           traffic, and the data jobs they wait for (alerts_uuid, legacy_columns)
#   (roll the new release out; both releases run side by side meanwhile)
#   deploy/deploy.sh post   AFTER the rollout, when only the new release runs (the one-shot
#                           `migrate-post`): the contract migrations (drop the deprecated columns,
#                           UNIQUE (ticker, exchange), ...), each waiting for the job it needs
#
# Each stage:
#   1. waits for the database
#   2. preflight:  warns about (optionally waits out) sessions that would stall DDL
#   3. migrate:    `migrate_online --stage STAGE --wait`: applies that stage's migrations, enqueues
#                  the data jobs they ask for, and waits at each gate with progress
#   4. postflight: fails loudly if any index is INVALID or any constraint left NOT VALID
# `post` refuses (exit 3) while a pre-deploy migration is unapplied: run `pre` first.
#
# Settings come from the environment (DATABASE_URL, REDIS_URL, DJANGO_SETTINGS_MODULE, ...), plus:
#   DEPLOY_DB_TIMEOUT=60        seconds to wait for the database
#   DEPLOY_MIN_TXN_AGE=60       a transaction older than this may stall DDL
#   DEPLOY_SESSION_WAIT=0       seconds to wait for such sessions to end (0: warn only)
#   DEPLOY_STRICT_PREFLIGHT=0   1: fail (exit 7) if they are still there after the wait
#   DEPLOY_WAIT=1               0: stop at the first gate instead of waiting; the stage is then
#                               not finished and the script exits 8, so a pipeline does not go on
#   DEPLOY_WAIT_TIMEOUT=        give up waiting (exit 5) after this many seconds
#   PYTHON=python               the interpreter that runs manage.py
#   DEPLOY_DATABASE=            the target to deploy (docs/targets.md), by name; unset: `default`
#                               (DATABASE_URL). The workers serve it through the same targets file
#   MIGRATE_DATABASE_URL=       the URL of the role that owns the schema: every command here uses
#                               it instead of DATABASE_URL, which web and workers keep for the app
#                               role (docs/deploying.md, "Two roles")
#   DEPLOY_APP_ROLE=            the app role: once the database is up, `manage.py grant_app_role ROLE
#                               --create` (idempotent; its password from APP_DATABASE_PASSWORD)
#
# Exit codes (those of every operator command, docs/troubleshooting.md "Exit codes"): 0 the stage is done,
# 1 a migration or the script failed, 2 bad usage, 3 `post` before `pre` finished (or another
# deploy is running), 4 a gate's job failed (operator: `backfill retry JOB`), 5 timed out,
# 7 unsafe database state (strict preflight, or postflight), 8 the stage is not finished.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
DEPLOY_DB_TIMEOUT=${DEPLOY_DB_TIMEOUT:-60}
DEPLOY_MIN_TXN_AGE=${DEPLOY_MIN_TXN_AGE:-60}
DEPLOY_SESSION_WAIT=${DEPLOY_SESSION_WAIT:-0}
DEPLOY_STRICT_PREFLIGHT=${DEPLOY_STRICT_PREFLIGHT:-0}
DEPLOY_WAIT=${DEPLOY_WAIT:-1}
DEPLOY_WAIT_TIMEOUT=${DEPLOY_WAIT_TIMEOUT:-}
DEPLOY_DATABASE=${DEPLOY_DATABASE:-}
DEPLOY_APP_ROLE=${DEPLOY_APP_ROLE:-}
# The deploy step changes the schema: it runs as the schema's owner, never as the app role.
if [ -n "${MIGRATE_DATABASE_URL:-}" ]; then
  export DATABASE_URL="$MIGRATE_DATABASE_URL"
fi

STAGE=${1:-}
case "$STAGE" in
  pre|post) ;;
  *) printf 'usage: deploy/deploy.sh pre|post\n  pre   before the new release starts\n  post  after the rollout\n' >&2
     exit 2 ;;
esac

step() { printf '\n[deploy %s] === %s ===\n' "$STAGE" "$*"; }
say() { printf '[deploy %s] %s\n' "$STAGE" "$*"; }
fail() { printf '[deploy %s] FAILED (exit %s): %s\n' "$STAGE" "$1" "$2" >&2; exit "$1"; }
manage() { "$PYTHON" manage.py "$@" ${DEPLOY_DATABASE:+--database "$DEPLOY_DATABASE"}; }

step "1/4 database"
rc=0; manage migrate_online --wait-for-db "$DEPLOY_DB_TIMEOUT" || rc=$?
[ "$rc" -eq 0 ] || fail "$rc" "the database did not accept connections within ${DEPLOY_DB_TIMEOUT}s"
# Before the migrations: the default privileges then cover every table they create.
if [ -n "$DEPLOY_APP_ROLE" ]; then
  rc=0; manage grant_app_role "$DEPLOY_APP_ROLE" --create >/dev/null || rc=$?
  [ "$rc" -eq 0 ] || fail "$rc" "the app role $DEPLOY_APP_ROLE could not be granted its privileges"
  say "app role $DEPLOY_APP_ROLE: rows only, no schema changes"
fi

step "2/4 preflight"
preflight=(--preflight --min-age "$DEPLOY_MIN_TXN_AGE" --session-wait "$DEPLOY_SESSION_WAIT")
[ "$DEPLOY_STRICT_PREFLIGHT" = 1 ] && preflight+=(--strict)
rc=0; manage migrate_online "${preflight[@]}" || rc=$?
[ "$rc" -eq 0 ] || fail "$rc" "sessions that would stall DDL are still open"

step "3/4 migrate ($STAGE-deploy migrations)"
migrate=(--stage "$STAGE")
if [ "$DEPLOY_WAIT" = 1 ]; then
  migrate+=(--wait)
  [ -n "$DEPLOY_WAIT_TIMEOUT" ] && migrate+=(--timeout "$DEPLOY_WAIT_TIMEOUT")
fi
migrate_rc=0; manage migrate_online "${migrate[@]}" || migrate_rc=$?

# Also after a failed migration: it tells what a half-way stop left behind.
step "4/4 postflight"
postflight_rc=0; manage migrate_online --postflight || postflight_rc=$?

[ "$migrate_rc" -eq 0 ] || fail "$migrate_rc" "migrate_online --stage $STAGE did not finish (see above)"
[ "$postflight_rc" -eq 0 ] || fail "$postflight_rc" "the schema was left half-migrated (see above)"

pending=0; manage migrate_online --check --stage "$STAGE" >/dev/null 2>&1 || pending=$?
if [ "$pending" -eq 8 ]; then
  fail 8 "the $STAGE-deploy stage is not finished: migrations wait behind data jobs (\`python manage.py migrate_online --plan --stage $STAGE\`); run this step again, or with DEPLOY_WAIT=1"
fi
[ "$pending" -eq 0 ] || fail "$pending" "migrate_online --check failed (see above)"
if [ "$STAGE" = pre ]; then
  say "pre-deploy stage done: roll out the new release, then run \`deploy/deploy.sh post\`"
else
  say "post-deploy stage done: nothing pending"
fi
