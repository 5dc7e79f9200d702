"""Every breakage the mutation check applies, and the test that must catch it.

One entry per way a reviewer could break the code (or plant what must not be committed), in
sections by the issue (and item) it proves. To add one: a unique name, the tracked file, an
exact `old` text that occurs once there, the `new` text, the pytest node id that must fail, and
why; tests/mutations/test_catalogue.py checks the first four, `python -m tests.mutations NAME`
the last. Secret values are made when this module is imported, so none is committed here.
"""

from __future__ import annotations

import random
import string

from tests.mutations import Mutation


def made_up(length: int, seed: int) -> str:
    return "".join(random.Random(seed).choices(string.ascii_letters + string.digits, k=length))


SECURITY = "tests/ops/test_security.py"
NO_SECRET = f"{SECURITY}::test_no_secret_is_committed"
SECRET_FORMS = f"{SECURITY}::test_the_secret_scan_catches_each_form"
SQL_SAFE = f"{SECURITY}::test_every_sql_statement_is_built_from_literals_psycopg_sql_objects_and_parameters"
SQL_SAMPLES = f"{SECURITY}::test_the_sql_check_flags_sql_built_by_string_formatting"
MASKING = f"{SECURITY}::test_a_worker_run_through_faults_logs_neither_the_database_nor_the_broker_password"
FIXED_MODELS = ("tests/jobs/test_fixed_models.py::"
                "test_each_fixed_model_soft_deletes_keeps_the_row_and_restores_it")
CLAIM_FENCE = "tests/engine/test_claim_fence.py"
QUARANTINE = "tests/engine/test_quarantine.py"
GATE = "tests/deploy/test_migrate_online.py::test_wait_goes_on_past_the_gate_once_the_workers_finish_the_job"
EXACTLY_ONCE = ("tests/engine/test_exactly_once.py::"
                "test_a_batchs_rows_commit_in_the_transaction_that_records_the_batch_done")
SCHEMA_FIXES = ("tests/jobs/test_schema_fixes.py::"
                "test_online_migration_under_live_load_loses_nothing_and_ends_in_the_fixed_schema")
CHAOS = ("tests/chaos/test_chaos.py::"
         "test_online_migration_under_seeded_faults_and_load_ends_like_an_undisturbed_run")
ROLLING = ("tests/deploy/test_rolling_deploy.py::"
           "test_both_releases_write_through_a_staged_deploy_without_an_error_and_nothing_is_lost")
DEADLOCK = ("tests/jobs/test_legacy_columns.py::"
            "test_a_save_of_the_previous_release_during_a_batch_waits_for_it_and_never_deadlocks")
DDL_LOCKS = ("tests/engine/test_ddl_locks.py::"
             "test_migration_waits_out_a_lock_holder_by_retrying_after_lock_timeout")
STANDBY = "tests/engine/test_standby.py"
HOLDS = "tests/engine/test_health_holds.py"
QUEUED_HOLDS = (f"{HOLDS}::test_a_session_queued_behind_another_sessions_lock_on_the_jobs_table_"
                "holds_the_run_until_served")
TUNING = "tests/unit/test_tuning.py"
LOCK_RETRY = "tests/unit/test_lock_retry.py"
LINT_RULES = "tests/unit/test_lint_rules.py"
LINT_EXCUSES = "tests/unit/test_lint_excuses.py"
STATUS_API = "tests/ops/test_status_api.py"
NOT_AN_OPERATOR = ("tests/ops/test_admin_actions.py::"
                   "test_staff_without_the_operator_permission_get_no_actions_and_no_control_urls")
EPOCH_FENCE = f"{CLAIM_FENCE}::test_a_message_of_an_older_dispatch_is_fenced_and_touches_nothing"
DEDUP_UNDO = "tests/jobs/test_ticker_dedup_undo.py"
UNDO_RULES = "tests/unit/test_undo_rules.py"
REVERSES = "tests/deploy/test_migration_reverses.py"
REDIRECT = "tests/jobs/test_merged_asset_redirect.py"
RACING_START = ("tests/engine/test_engine_control.py::"
                "test_a_start_racing_an_uncommitted_one_waits_for_it_and_is_refused_as_already_active")

# The tests that are scanners of the tree (the secret scan, the SQL check) rather than of the
# product's behaviour: their entries plant what they must find, and are counted apart.
SCANNER_TESTS = frozenset({NO_SECRET, SECRET_FORMS, SQL_SAFE, SQL_SAMPLES})


def is_scanner(mutation: Mutation) -> bool:
    """An entry that breaks a scanner, or the tests' own instruments (a file under tests/), or
    plants what a scanner must find: not a safety path of the product."""
    return (mutation.file.startswith("tests/") or mutation.file == ".secrets.baseline"
            or mutation.test.split("[")[0] in SCANNER_TESTS)


KEY = made_up(40, 1)
PASSWORD = made_up(16, 2)
ELEVEN = made_up(11, 3)

DJANGO_RULES = "engine/migrations_worker/lint/django_rules.py"
ASSETS_0012 = "apps/backend/src/assets/migrations/0012_enqueue_ticker_dedup.py"
ALERTS_0010 = "apps/backend/src/investments/migrations/0010_alert_uuid_primary_key.py"
CONTROL = "engine/migrations_worker/runs/control.py"
# The last operation of assets 0012 after its first line, as written there.
REFUSAL_0012 = """\
            "SELECT count(*) FROM assets_duplicatetickergroup WHERE merged_at IS NOT NULL",
            "duplicate group(s) are merged: their removed assets and rows live on only as "
            "before-images and aliases, which taking back assets 0012 (and 0011) would orphan "
            "and drop. Put them back first: python manage.py backfill undo ticker_dedup "
            "--inline, then migrate back again.",
        ),
"""
# Operations of investments 0010, as written there.
VALIDATE_UUID_FK = """        SafeSQL(
            steps=[
                [
                    "ALTER TABLE investments_alerttrigger "
                    "VALIDATE CONSTRAINT investments_alerttrigger_alert_uuid_fk"
                ]
            ],
            reverse_steps=[],
            long_running=True,
            description="Validate FK alert_uuid -> alert(uuid)",
        ),
"""
LEGACY_FK = ('        SafeSQL(steps=[[ADD_LEGACY_FK]], reverse_steps=[], '
             'description="FK alert_id -> alert(id), NOT VALID"),\n') + """        SafeSQL(
            steps=[
                [
                    "ALTER TABLE investments_alerttrigger "
                    "VALIDATE CONSTRAINT investments_alerttrigger_alert_id_fk"
                ]
            ],
            reverse_steps=[],
            long_running=True,
            description="Validate FK alert_id -> alert(id)",
        ),
"""

MUTATIONS: list[Mutation] = [
    # -- item 5: a secret committed in each form the scan used to miss -------------------------
    Mutation(
        "a planted secret, the Django key unquoted in a shell script", "deploy/deploy.sh",
        "DEPLOY_WAIT_TIMEOUT=${DEPLOY_WAIT_TIMEOUT:-}\n",
        "DEPLOY_WAIT_TIMEOUT=${DEPLOY_WAIT_TIMEOUT:-}\nSECRET_KEY=" + KEY + "\n",
        NO_SECRET, "the old scan only saw a quoted SECRET_KEY"),
    Mutation(
        "a planted secret, the Django key as an item of a compose environment list", "docker-compose.yml",
        "    image: redis:",
        "    environment:\n      - SECRET_KEY=" + KEY + "\n    image: redis:",
        NO_SECRET, "a compose environment written as a list"),
    Mutation(
        "a planted secret, the database's password as an unquoted YAML value", "docker-compose.yml",
        "      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in the environment or .env}\n",
        "      POSTGRES_PASSWORD: " + PASSWORD + "\n",
        NO_SECRET, "an unquoted YAML value"),
    Mutation(
        "a planted secret, a password member of a JSON document in the docs", "docs/operating.md",
        "## Configuration\n",
        '## Configuration\n\n```json\n{"user": "investments", "password": "' + PASSWORD + '"}\n```\n',
        NO_SECRET, "a JSON document (here in the docs)"),
    Mutation(
        "a planted secret, eleven characters in the dev settings", "apps/backend/src/config/settings/dev.py",
        'DEBUG = env_bool("DEBUG", True)\n',
        'DEBUG = env_bool("DEBUG", True)\nEMAIL_HOST_PASSWORD = "' + ELEVEN + '"\n',
        NO_SECRET, "the old scan wanted 12 characters or more"),
    Mutation(
        "a planted secret, a Redis URL whose password holds a dollar sign", "docker-compose.yml",
        "    REDIS_URL: redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD in the environment or .env}"
        "@redis:6379/0\n",
        "    REDIS_URL: redis://default:" + PASSWORD[:8] + "$" + PASSWORD[8:] + "@redis:6379/0\n",
        NO_SECRET, "the old scan (and detect-secrets' BasicAuthDetector) stop at a $"),
    Mutation(
        "a planted secret, the Django key exported in deploy.sh", "deploy/deploy.sh",
        'cd "$ROOT"\n',
        'cd "$ROOT"\nexport DJANGO_SECRET_KEY=' + KEY + "\n",
        NO_SECRET, "an exported variable whose name only contains SECRET_KEY"),
    Mutation(
        "a planted secret, in the scan's own file", SECURITY,
        'FILTERS_OFF = {"detect_secrets.filters.heuristic.is_indirect_reference"}\n',
        'FILTERS_OFF = {"detect_secrets.filters.heuristic.is_indirect_reference"}\n'
        'ADMIN_PASSWORD = "' + PASSWORD + '"\n',
        NO_SECRET, "the old scan skipped its own file"),
    Mutation(
        "secret scan: its own file left out", "tests/ops/secrets_scan.py",
        "if name == BASELINE or not path.is_file():",
        'if name in (BASELINE, "tests/ops/test_security.py") or not path.is_file():',
        NO_SECRET, "the scan must read every tracked text file, itself included"),
    Mutation(
        "secret scan: the URL plugin stops at $ again", "tests/ops/secrets_plugins.py",
        r"""([^\s/?#\[\]@'\"`]+)@")""",
        r"""([^\s/?#\[\]@'\"`$]+)@")""",
        f"{SECRET_FORMS}[url-password-with-dollar]",
        "the project's plugin must see what detect-secrets misses"),
    Mutation(
        "secret scan: unquoted values left to detect-secrets", "tests/ops/secrets_plugins.py",
        "        keywords_need_quotes = filetype not in REGEX_BY_FILETYPE or filetype in CODE\n",
        "        keywords_need_quotes = False\n",
        f"{SECRET_FORMS}[unquoted-SECRET_KEY]",
        "detect-secrets' keyword plugin wants quotes in shell scripts, env files and Markdown"),
    Mutation(
        "secret scan: YAML lists left to detect-secrets' parser", "tests/ops/secrets_scan.py",
        "            if determine_file_type(path) == FileType.YAML:\n",
        "            if False:\n",
        f"{SECRET_FORMS}[compose-list-SECRET_KEY]",
        "detect-secrets' YAML parser drops list items once a file holds any other value"),
    Mutation(
        "secret scan: the keyword plugin dropped from the baseline", ".secrets.baseline",
        '    {\n      "name": "KeywordDetector",\n      "keyword_exclude": ""\n    },\n',
        "",
        SECRET_FORMS, "a baseline may not scan with fewer plugins"),

    # -- item 6: SQL built unsafely where the check did not look ------------------------------
    Mutation(
        "sql: q = '...'; q += t; cursor.execute(q)", "engine/migrations_worker/runs/batching.py",
        '    cursor.execute(\n        sql.SQL("SELECT max({k}) FROM {t}").format(k=sql.Identifier(key), '
        't=sql.Identifier(table))\n    )\n',
        '    query = "SELECT max(id) FROM "\n    query += table\n    cursor.execute(query)\n',
        SQL_SAFE, "augmented assignment was not followed"),
    Mutation(
        "sql: .raw() of an f-string", "engine/migrations_worker/runs/control.py",
        '    return JobRun.objects.using(using).filter(job_name=job_name).order_by("-id").first()\n',
        '    return next(iter(JobRun.objects.using(using).raw(f"SELECT * FROM migrations_worker_jobrun '
        "WHERE job_name = '{job_name}' ORDER BY id DESC LIMIT 1\")), None)\n",
        SQL_SAFE, ".raw() was not looked at"),
    Mutation(
        "sql: RawSQL of an f-string", "engine/migrations_worker/ops/run_admin.py",
        'annotate(n=Count("id"))',
        'annotate(n=RawSQL(f"SELECT count(*) FROM migrations_worker_jobbatch WHERE run_id = {run.pk}", []))',
        SQL_SAFE, "RawSQL was not looked at"),
    Mutation(
        "sql: cursor.copy() of an f-string", "apps/backend/src/seed/dataset.py",
        "    cursor.execute(_render(cursor, query), params)\n",
        '    with cursor.copy(f"COPY ({_render(cursor, query)}) TO STDOUT") as copy:\n'
        "        copy.read()\n",
        SQL_SAFE, "cursor.copy() was not looked at"),
    Mutation(
        "sql: RunSQL of an f-string in a migration",
        "apps/backend/src/portfolios/migrations/0003_holding_portfolio_asset_index.py",
        "    operations = [\n",
        "    operations = [\n        migrations.RunSQL(f\"ALTER TABLE portfolios_holding SET (fillfactor = "
        "{settings.FILLFACTOR})\"),\n",
        SQL_SAFE, "RunSQL was not looked at"),
    Mutation(
        "sql: a SafeSQL step of an f-string",
        "apps/backend/src/assets/migrations/0010_stop_new_duplicate_tickers.py",
        "                [FUNCTION],\n",
        "                [FUNCTION],\n                [f\"ALTER TABLE assets_asset SET (fillfactor = "
        "{settings.FILLFACTOR})\"],\n",
        SQL_SAFE, "SafeSQL steps were not looked at where the migration writes them"),
    Mutation(
        "sql: an f-string beside an exempted line", "engine/migrations_worker/operations/ddl.py",
        "            for statement in statements:\n                cursor.execute(statement)\n",
        "            cursor.execute(f\"SET application_name = '{description}'\")\n"
        "            for statement in statements:\n                cursor.execute(statement)\n",
        SQL_SAFE, "the exemption used to cover the whole function"),
    Mutation(
        "sql: an f-string at a module top that had an exemption", "apps/backend/src/seed/dataset.py",
        "_TEMP_TABLES = (TMP_MEMBER, TMP_PLAIN)\n",
        "_TEMP_TABLES = (TMP_MEMBER, TMP_PLAIN)\n"
        "_PROBE = sql.SQL(f\"SELECT count(*) FROM {TMP_MEMBER}\")\n",
        SQL_SAFE, "the exemption used to cover the module's whole top level"),
    Mutation(
        "sql check: augmented assignment not followed", "tests/chaos/sql_safety.py",
        "    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):\n",
        "    if False:\n",
        f"{SQL_SAMPLES}[q += t]", "the checker's own regression"),

    # -- item 7: the smaller holes ---------------------------------------------------------------
    Mutation(
        "masking: broker unreachable exits 3", "engine/migrations_worker/exceptions.py",
        "class BrokerUnavailable(MigrationsWorkerError):\n    exit_code = ExitCode.BROKER_UNAVAILABLE\n",
        "class BrokerUnavailable(MigrationsWorkerError):\n    exit_code = ExitCode.CONFLICT\n",
        MASKING, "the test accepted exit 3, which returns before the message it protects"),
    Mutation(
        "masking: the broker URL printed unmasked", "engine/migrations_worker/runs/dispatch.py",
        "{maybe_sanitize_url(app.conf.broker_url)}",
        "{app.conf.broker_url}",
        MASKING, "the password in the broker-unreachable message"),
    Mutation(
        "admin: a hostile selection answers 500", "engine/migrations_worker/ops/run_admin.py",
        "        if refused:\n",
        "        if False:\n",
        "tests/ops/test_bad_input.py::"
        "test_an_admin_action_on_hostile_or_missing_selections_answers_clearly_and_changes_nothing[sql]",
        "Django's pk__in lookup raises on a non-numeric id"),
    Mutation(
        "fixed model: NewsArticle hard-deletes", "apps/backend/src/investments/models/news.py",
        "class NewsArticle(TimeStampedModel, SoftDeleteModel):",
        "class NewsArticle(TimeStampedModel):",
        f"{FIXED_MODELS}[NewsArticle]", "the test covered 5 of the 7 fixed models"),
    Mutation(
        "fixed model: Industry hard-deletes", "apps/backend/src/assets/models/reference/industry.py",
        "class Industry(TimeStampedModel, SoftDeleteModel):",
        "class Industry(TimeStampedModel):",
        f"{FIXED_MODELS}[Industry]", "the test covered 5 of the 7 fixed models"),
    Mutation(
        "claim fence: no re-check before the commit", "engine/migrations_worker/runs/runner.py",
        "WHERE id = %s AND status = 'running' AND attempts = %s AND end_key = %s FOR UPDATE\n",
        "WHERE id = %s AND attempts > 0 * %s AND 0 * %s = 0 FOR UPDATE\n",
        f"{CLAIM_FENCE}::test_a_worker_stalled_past_its_lease_after_its_claim_is_fenced_and_the_batch_applied_once",
        "a worker that lost its claim applies its batch again"),
    Mutation(
        "claim fence: the attempt not re-checked", "engine/migrations_worker/runs/runner.py",
        "WHERE id = %s AND status = 'running' AND attempts = %s AND end_key = %s FOR UPDATE\n",
        "WHERE id = %s AND status = 'running' AND %s > 0 AND end_key = %s FOR UPDATE\n",
        f"{CLAIM_FENCE}::test_a_worker_stalled_past_its_lease_after_its_claim_is_fenced_and_the_batch_applied_once",
        "a stale claim beats the current one to the batch"),
    Mutation(
        "claim: no row lock while the batch runs", "engine/migrations_worker/runs/runner.py",
        "WHERE id = %s AND status = 'running' AND attempts = %s AND end_key = %s FOR UPDATE\n",
        "WHERE id = %s AND status = 'running' AND attempts = %s AND end_key = %s\n",
        f"{CLAIM_FENCE}::test_a_worker_slowed_past_its_lease_inside_its_batch_keeps_it_and_applies_it_once",
        "a slow batch past its lease is reclaimed while it runs"),
    Mutation(
        "gate: waits silently inside the migration instead of stopping at it",
        "engine/migrations_worker/runs/gates.py",
        "    raise gate.refusal(needed_by)\n",
        "    drive.wait_for([job_name])\n",
        GATE, "the test only checked that the names appear (this passes it), not 'waits for' first"),
    Mutation(
        "gate: finishes a big remainder inline instead of waiting", "engine/migrations_worker/runs/gates.py",
        "    return Gate(job_name, GateState.CLOSED, run or latest, remaining, database=using)\n",
        "    return Gate(job_name, GateState.INLINE, run or latest, remaining, database=using)\n",
        GATE, "the deploy step, not the workers, would do the job under the deploy lock"),
    Mutation(
        "gate: decided again by RequireJob after the deploy decided it",
        "engine/migrations_worker/operations/jobs.py",
        "        if self.job_name not in _PASSED.get():\n",
        "        if True:\n",
        "tests/deploy/test_gate_decisions.py::"
        "test_a_gate_is_decided_once_by_migrate_online_and_once_by_plain_migrate[migrate_online]",
        "each migration's gate read twice in one deploy pass, the second time after its other "
        "operations ran"),
    Mutation(
        "ddl: no lock_timeout on a step", "engine/migrations_worker/operations/lock_retry.py",
        '"lock_timeout_ms": self.concurrent_lock_timeout_ms if concurrent else attempt.lock_timeout_ms,',
        '"lock_timeout_ms": self.concurrent_lock_timeout_ms if concurrent else None,',
        DDL_LOCKS, "the ALTER queues behind the holder, and every writer behind it"),

    # -- issue #15: bad rows set aside -------------------------------------------------------------
    Mutation(
        "quarantine: the fence does not check the batch's end", "engine/migrations_worker/runs/runner.py",
        "WHERE id = %s AND status = 'running' AND attempts = %s AND end_key = %s FOR UPDATE\n",
        "WHERE id = %s AND status = 'running' AND attempts = %s AND 0 * %s = 0 FOR UPDATE\n",
        f"{QUARANTINE}::test_a_stale_claim_on_a_batch_since_cut_in_two_is_fenced",
        "a worker that claimed a whole range before it was cut applies it over the half "
        "another worker claimed afresh"),
    Mutation(
        "quarantine: no split, the whole batch set aside at once", "engine/migrations_worker/runs/runner.py",
        "            if count > 1:\n"
        "                second = quarantine.split(batch, middle, count, using=self.using)\n",
        "            if count > 1 and batch.attempts >= self.tuning.max_attempts:\n"
        "                self._quarantine(batch, middle, error, pg.sqlstate(exc))\n"
        "                return\n"
        "            if False:\n"
        "                second = quarantine.split(batch, middle, count, using=self.using)\n",
        f"{QUARANTINE}::test_one_bad_row_in_a_large_run_is_quarantined_alone_and_every_other_row_"
        "done_once",
        "a thousand good rows left undone for one bad one, under a key that is not the bad row"),
    Mutation(
        "quarantine: the budget ignored", "engine/migrations_worker/runs/runner.py",
        "        reason = quarantine.over_budget(run, self.tuning, using=self.using)\n",
        "        reason = \"\"\n",
        f"{QUARANTINE}::test_past_its_budget_a_run_pauses_and_accepted_keys_let_it_finish",
        "a bug that fails every row quarantines the whole table instead of pausing the run"),

    # -- item 1: exactly once, seen where it happens ----------------------------------------------
    Mutation(
        "exactly once: the batch's data commits before its progress",
        "engine/migrations_worker/runs/runner.py",
        "                    result = self.job.process_batch(job_cursor, claim.start, claim.end)\n",
        "                    result = self.job.process_batch(job_cursor, claim.start, claim.end)\n"
        "                    job_cursor.execute('COMMIT')\n",
        EXACTLY_ONCE, "a kill between the two commits leaves data done and the batch to do again"),
    Mutation(
        "prepared statements: a batch's own statements planned again every time",
        "engine/migrations_worker/runs/prepared.py",
        "        return super().execute(query, params, prepare=True, binary=binary)\n",
        "        return super().execute(query, params, prepare=False, binary=binary)\n",
        "tests/engine/test_prepared_statements.py::"
        "test_the_claim_fence_and_outcome_of_every_batch_are_planned_once_per_session",
        "every batch parses and plans its claim, fence and outcome again"),
    Mutation(
        "totals: the run concludes on a fold taken before its last batch committed",
        "engine/migrations_worker/runs/runner.py",
        "            fold(self.run_id, using=self.using)\n            run.refresh_from_db()\n",
        "",
        "tests/engine/test_exactly_once.py::"
        "test_a_batch_that_commits_while_the_last_worker_concludes_counts_in_the_runs_totals",
        "a run finished with a batch's rows left out of its totals (CI's claim-fence failure)"),

    # -- item 2 and 3: nothing lost, by absolute invariants and an independent oracle ------------
    Mutation(
        "ticker_dedup: a merged-away asset's news links deleted instead of re-pointed",
        "apps/backend/src/assets/jobs/ticker_dedup.py",
        '        self.keep_one_per(NEWS_LINKS, "newsarticle_id")\n',
        '        self.cursor.execute(sql.SQL("DELETE FROM {t} WHERE asset_id = ANY(%s)").format(\n'
        '            t=sql.Identifier(NEWS_LINKS)), [self.losers])\n',
        SCHEMA_FIXES, "news links silently gone; the old schema test never counted them"),
    Mutation(
        "ticker_dedup: a summed position's cost averaged without weights",
        "apps/backend/src/assets/jobs/merge_rules.py",
        "    cost = sum((p.quantity * p.average_cost for p in positions), Decimal(0)) / quantity\n",
        "    cost = sum((p.average_cost for p in positions), Decimal(0)) / len(positions)\n",
        SCHEMA_FIXES, "a bug in the job itself: a comparison with a calm run of the same code "
        "hides it, the independent oracle does not"),

    # -- item 4: faults counted by what they hit -------------------------------------------------
    Mutation(
        "chaos: the kill after a batch's write never lands but counts as a hit",
        "tests/chaos/faults.py",
        "                self.cluster.procs.kill(name, signal.SIGKILL)\n                conn.rollback()\n",
        "                conn.rollback()\n",
        CHAOS, "a seed whose faults hit nothing proves nothing: no batch is ever redone"),

    # -- the previous release through a staged deploy (issue #12) --------------------------------
    Mutation(
        "staged deploy: the previous release's text writes not captured",
        "apps/backend/src/assets/migrations/0008_retire_legacy_text_fields.py",
        '                    "CREATE TRIGGER assets_asset_capture_legacy_text "\n'
        '                    "BEFORE INSERT OR UPDATE OF sector, industry OR DELETE ON assets_asset "\n'
        '                    "FOR EACH ROW EXECUTE FUNCTION assets_asset_capture_legacy_text()",\n',
        "", ROLLING, "legacy_columns cannot converge while the old code re-classifies assets"),
    Mutation(
        "staged deploy: writes naming a merged-away asset not redirected",
        "apps/backend/src/assets/migrations/0012_enqueue_ticker_dedup.py",
        '        f"CREATE TRIGGER assets_redirect_merged_asset BEFORE INSERT OR UPDATE OF asset_id "\n'
        '        f"ON {table} FOR EACH ROW EXECUTE FUNCTION {function}",\n',
        "", ROLLING, "a holding, alert or watch naming a removed duplicate fails with 23503"),
    Mutation(
        "legacy_columns: a batch archives before it locks its assets",
        "apps/backend/src/assets/jobs/legacy_columns.py",
        "        cursor.execute(sql.SQL(LOCK_ASSETS).format(assets=sql.Identifier(ASSETS)),\n"
        '                       {"start": start, "end": end})\n',
        "", DEADLOCK, "the previous release's save deadlocks with a batch (40P01, CI's demo)"),

    # -- the job scaffold (issue #19) ---------------------------------------------------------
    Mutation(
        "startjob: a job module beside the others is never imported",
        "engine/migrations_worker/apps.py",
        "        for module in pkgutil.iter_modules(getattr(package, \"__path__\", ())):\n",
        "        for module in []:\n",
        "tests/unit/test_job_layout.py::"
        "test_starting_django_registers_every_job_of_the_domain_apps_jobs_packages",
        "a scaffolded job would run nowhere until someone added it to a list of imports"),
    Mutation(
        "startjob: an existing job module written over",
        "engine/migrations_worker/management/scaffold.py",
        "    if existing:\n",
        "    if False:\n",
        "tests/deploy/test_startjob.py::test_a_file_that_exists_is_never_written_over",
        "a second startjob of a name would lose the SQL and rules written into the first"),

    # -- health per server (issue #20) ----------------------------------------------------------
    Mutation(
        "server limit: one database too many on a server",
        "engine/migrations_worker/runs/server_slots.py",
        "and len(holders) >= most:\n",
        "and len(holders) > most:\n",
        "tests/engine/test_server_health.py::"
        "test_four_databases_on_one_server_with_a_limit_of_two_never_run_more_than_two_at_once",
        "a third database of the server would take a slot while two hold theirs"),
    Mutation(
        "standby slots: an idle slot retaining WAL not watched",
        "engine/migrations_worker/runs/throttle.py",
        "                                          replica_lag, standby_slot)\n",
        "                                          replica_lag)\n",
        "tests/engine/test_server_health.py::"
        "test_an_idle_slot_retaining_wal_on_the_second_server_holds_a_run_there_and_not_one_on_the_first",
        "a standby gone away would fall further behind with every batch, unseen"),

    # -- issue #23: every safety path -------------------------------------------------------------
    # throttle.py: the standbys, the DDL back-off, batch sizing, the knobs
    Mutation(
        "throttle: replica lag not among the health checks", "engine/migrations_worker/runs/throttle.py",
        "HEALTH_CHECKS: tuple[HealthCheck, ...] = (lock_waiters, ddl_backing_off, long_transaction,\n"
        "                                          replica_lag, standby_slot)\n",
        "HEALTH_CHECKS: tuple[HealthCheck, ...] = (lock_waiters, ddl_backing_off, long_transaction,\n"
        "                                          standby_slot)\n",
        f"{STANDBY}::test_replay_paused_mid_run_holds_it_within_one_batch_and_it_goes_on_when_"
        "replay_resumes",
        "batches go on writing WAL a paused standby does not replay"),
    Mutation(
        "throttle: replica lag read in seconds only", "engine/migrations_worker/runs/throttle.py",
        "        if behind > 0 and (seconds > tuning.max_replica_lag_seconds\n"
        "                           or behind > tuning.max_replica_lag_bytes):\n",
        "        if behind > 0 and seconds > tuning.max_replica_lag_seconds:\n",
        f"{STANDBY}::test_a_paused_standby_reads_as_behind_in_bytes_then_in_seconds_and_as_fine_"
        "once_it_replays",
        "replay_lag is NULL or stale while a standby falls behind by gigabytes"),
    Mutation(
        "throttle: a caught-up standby held by its stale replay_lag",
        "engine/migrations_worker/runs/throttle.py",
        "        if behind > 0 and (seconds > tuning.max_replica_lag_seconds\n",
        "        if (seconds > tuning.max_replica_lag_seconds\n",
        "tests/unit/test_replica_check.py::"
        "test_a_standby_that_has_replayed_everything_is_not_behind_whatever_its_last_replay_lag_says",
        "replay_lag keeps its last measurement after the standby caught up: a run held for nothing"),
    Mutation(
        "throttle: an expected standby missing while another is connected goes unseen",
        "engine/migrations_worker/runs/throttle.py",
        "                for name in expected.names if name not in connected]\n",
        "                for name in expected.names if name not in connected and not connected]\n",
        f"{STANDBY}::test_an_expected_standby_missing_or_too_few_standbys_hold_and_unexpected_"
        "absence_does_not",
        "one standby of two gone away, hours behind when it comes back"),
    Mutation(
        "throttle: standbys counted whether or not their lag can be read",
        "engine/migrations_worker/runs/throttle.py",
        "    if not expected.names and len(readable) < expected.count:\n",
        "    if not expected.names and len(standbys) < expected.count:\n",
        f"{STANDBY}::test_a_role_that_cannot_read_the_standbys_lag_is_held_not_waved_through",
        "a role without pg_read_all_stats sees NULL positions: every standby 'fine'"),
    Mutation(
        "throttle: a missing standby held as replica lag", "engine/migrations_worker/runs/throttle.py",
        "    kind = HoldKind.MISSING_STANDBY if problems else HoldKind.REPLICA_LAG\n",
        "    kind = HoldKind.REPLICA_LAG\n",
        f"{STANDBY}::test_the_standby_stopped_mid_run_holds_it_until_the_standby_is_back",
        "the operator is told to wait for a replay that cannot happen: the standby is gone"),
    Mutation(
        "throttle: a deploy step backing off not among the health checks",
        "engine/migrations_worker/runs/throttle.py",
        "HEALTH_CHECKS: tuple[HealthCheck, ...] = (lock_waiters, ddl_backing_off, long_transaction,\n",
        "HEALTH_CHECKS: tuple[HealthCheck, ...] = (lock_waiters, long_transaction,\n",
        "tests/engine/test_ddl_locks.py::"
        "test_a_step_backing_off_from_a_lock_puts_running_jobs_on_hold_until_it_ends",
        "batches go on taking row locks while the deploy step they refuse backs off, until it fails"),
    Mutation(
        "throttle: a batch grows without a cap", "engine/migrations_worker/runs/throttle.py",
        "    ideal = min(ideal, current * tuning.max_growth)\n",
        "",
        f"{TUNING}::test_a_fast_batch_grows_the_next_at_most_max_growth_times",
        "one fast batch (an empty range) and the next asks for max_batch_size rows at once"),
    Mutation(
        "throttle: a batch shrinks without a floor", "engine/migrations_worker/runs/throttle.py",
        "    ideal = max(ideal, current / tuning.max_growth)\n",
        "",
        f"{TUNING}::test_a_slow_batch_shrinks_the_next_at_most_max_growth_times",
        "one batch slowed by a lock wait and the run crawls at min_batch_size"),
    Mutation(
        "throttle: max_batch_size not applied", "engine/migrations_worker/runs/throttle.py",
        "    return int(max(tuning.min_batch_size, min(tuning.max_batch_size, ideal)))\n",
        "    return int(max(tuning.min_batch_size, ideal))\n",
        f"{TUNING}::test_the_size_never_leaves_min_batch_size_to_max_batch_size",
        "the operator's cap on a transaction's rows ignored"),
    Mutation(
        "throttle: min_batch_size not applied", "engine/migrations_worker/runs/throttle.py",
        "    return int(max(tuning.min_batch_size, min(tuning.max_batch_size, ideal)))\n",
        "    return int(min(tuning.max_batch_size, ideal))\n",
        f"{TUNING}::test_the_size_never_leaves_min_batch_size_to_max_batch_size",
        "batches of a handful of rows, each paying a transaction"),
    Mutation(
        "tuning: NaN and infinity accepted", "engine/migrations_worker/runs/throttle.py",
        "            if not math.isfinite(value) or value < low",
        "            if value < low",
        f"{TUNING}::test_a_knob_a_worker_would_choke_on_is_refused_naming_it",
        "NaN compares false with every bound: a run that sleeps NaN seconds crashes its worker"),
    Mutation(
        "tuning: an open lower bound accepted", "engine/migrations_worker/runs/throttle.py",
        " or (low_open and value == low) or value > high:",
        " or value > high:",
        f"{TUNING}::test_a_knob_a_worker_would_choke_on_is_refused_naming_it",
        "a lease of 0 s: every batch reclaimed by another worker as soon as it is claimed"),
    Mutation(
        "tuning: True taken for the number 1", "engine/migrations_worker/runs/throttle.py",
        "            if isinstance(value, bool) or not isinstance(value, (int, float)) or (\n",
        "            if not isinstance(value, (int, float)) or (\n",
        f"{TUNING}::test_a_knob_a_worker_would_choke_on_is_refused_naming_it",
        "`--option batch_size=true` runs batches of one row"),
    Mutation(
        "tuning: min_batch_size above max_batch_size accepted", "engine/migrations_worker/runs/throttle.py",
        "        if self.min_batch_size > self.max_batch_size:\n",
        "        if self.min_batch_size > self.max_batch_size * 2:\n",
        f"{TUNING}::test_a_knob_a_worker_would_choke_on_is_refused_naming_it",
        "the clamp then returns min_batch_size, above the cap the operator set"),

    # lock_retry: the timing table a DDL step asks for its lock by
    Mutation(
        "lock retry: the lock_timeout escalates past its cap",
        "engine/migrations_worker/operations/lock_retry.py",
        "    return list(zip(escalation(lock_first, lock_cap, LOCK_GROWTH, attempts),\n",
        "    return list(zip(escalation(lock_first, MAX_MILLIS, LOCK_GROWTH, attempts),\n",
        f"{LOCK_RETRY}::test_by_default_requests_start_at_tens_of_milliseconds_and_grow_to_a_cap",
        "a step refused 40 times asks for seconds: every writer of the table queues behind it"),
    Mutation(
        "lock retry: the lock_timeout never escalates",
        "engine/migrations_worker/operations/lock_retry.py",
        "    return list(zip(escalation(lock_first, lock_cap, LOCK_GROWTH, attempts),\n",
        "    return list(zip(escalation(lock_first, lock_cap, 1, attempts),\n",
        f"{LOCK_RETRY}::test_the_site_sets_the_table_and_an_operation_adjusts_it_over_the_site",
        "a lock a busy table's queries hold for 30 ms is never granted at 20 ms"),
    Mutation(
        "lock retry: the back-off does not grow",
        "engine/migrations_worker/operations/lock_retry.py",
        "                    escalation(sleep_first, sleep_cap, SLEEP_GROWTH, attempts), strict=True))\n",
        "                    escalation(sleep_first, sleep_cap, 1, attempts), strict=True))\n",
        f"{LOCK_RETRY}::test_by_default_requests_start_at_tens_of_milliseconds_and_grow_to_a_cap",
        "40 attempts spent in a second against a holder of a minute"),
    Mutation(
        "lock retry: the back-off not jittered", "engine/migrations_worker/operations/lock_retry.py",
        "        return (rng or random).uniform((1 - JITTER) * self.sleep_ms, self.sleep_ms)\n",
        "        return float(self.sleep_ms)\n",
        f"{LOCK_RETRY}::test_a_back_off_is_jittered_between_half_and_all_of_its_row",
        "steps of several deploys refused together ask again together, in lock-step"),
    Mutation(
        "lock retry: an error that is not 55P03 retried",
        "engine/migrations_worker/operations/ddl.py",
        "                if not pg.is_lock_timeout(exc) or attempt is attempts[-1]:\n",
        "                if attempt is attempts[-1]:\n",
        "tests/engine/test_ddl_locks.py::test_other_errors_are_not_retried",
        "a broken statement retried 40 times, the deploy stalled for minutes before failing"),
    Mutation(
        "lock retry: a refused step does not tell the jobs it backs off",
        "engine/migrations_worker/operations/ddl.py",
        "                sleep_ms = attempt.jittered_sleep_ms()\n                signal()\n",
        "                sleep_ms = attempt.jittered_sleep_ms()\n",
        "tests/engine/test_ddl_locks.py::"
        "test_a_step_backing_off_from_a_lock_puts_running_jobs_on_hold_until_it_ends",
        "the jobs' row locks keep refusing the step until it runs out of attempts"),

    # lint: each rule's check disabled or loosened
    Mutation(
        "lint raw-sql: RunSQL not reported", DJANGO_RULES,
        '    return "RunSQL" if isinstance(step.operation, ops.RunSQL) else None\n',
        '    return "RunSQL" if type(step.operation).__name__ == "RawSQL" else None\n',
        f"{LINT_RULES}::test_run_sql_is_reported_and_safe_sql_is_not",
        "RunSQL sets no lock_timeout and never retries: an ALTER in it queues every writer"),
    Mutation(
        "lint concurrent-index-in-atomic-migration: SafeSQL's CONCURRENTLY not read",
        "engine/migrations_worker/lint/operation_kinds.py",
        '        return any("CONCURRENTLY" in str(s).upper() for step in operation.steps for s in step)\n',
        '        return False\n',
        f"{LINT_RULES}::test_safe_sql_with_concurrently_in_an_atomic_migration_is_reported_as_a_"
        "concurrent_index",
        "CREATE INDEX CONCURRENTLY in a transaction block fails in the deploy, not in CI"),
    Mutation(
        "lint lock-safe-operation-in-atomic-migration: RequireJob not among the lock-safe steps",
        "engine/migrations_worker/lint/operation_kinds.py",
        "LOCK_SAFE_OPERATIONS: tuple[type[Operation], ...] = (Safely, SafeSQL, RequireJob)\n",
        "LOCK_SAFE_OPERATIONS: tuple[type[Operation], ...] = (Safely, SafeSQL)\n",
        f"{LINT_RULES}::test_lock_safe_step_in_an_atomic_migration_is_reported_and_in_a_non_atomic_"
        "one_is_not[RequireJob]",
        "a RequireJob in an atomic migration waits for its job while holding the migration's locks"),
    Mutation(
        "lint alter-primary-key: a key changing type not reported", DJANGO_RULES,
        "    return _shape(old) != _shape(new)  # still the key: does its type or column change?\n",
        "    return False\n",
        f"{LINT_RULES}::test_primary_key_changing_type_is_reported",
        "an AlterField of the key to a UUID rewrites the table and every foreign key under "
        "ACCESS EXCLUSIVE"),
    Mutation(
        "lint not-null-without-db-default: a Python default taken for a database one", DJANGO_RULES,
        "    if new.null or new.many_to_many or new.db_default is not NOT_PROVIDED or new.primary_key:\n",
        "    if new.null or new.many_to_many or new.has_default() or new.db_default is not NOT_PROVIDED "
        "or new.primary_key:\n",
        f"{LINT_RULES}::test_not_null_field_without_db_default_is_reported_and_with_db_default_or_"
        "null_is_not",
        "the previous release inserts without the column: NOT NULL violation on every insert"),
    Mutation(
        "lint index-on-existing-table: a unique field not counted as an index", DJANGO_RULES,
        "        return bool(f.unique or f.db_index)  # a ForeignKey has db_index=True by default\n",
        "        return bool(f.db_index)\n",
        f"{LINT_RULES}::test_plain_index_on_an_existing_table_is_reported[unique field]",
        "unique=True builds its index under a lock that blocks every write"),
    Mutation(
        "lint index-on-existing-table: a UniqueConstraint not reported", DJANGO_RULES,
        "    elif isinstance(operation, ops.AddConstraint) and isinstance(\n",
        "    elif isinstance(operation, ops.AddConstraint) and not isinstance(\n",
        f"{LINT_RULES}::test_plain_index_on_an_existing_table_is_reported[UniqueConstraint]",
        "a unique constraint builds its index under a lock that blocks every write"),
    Mutation(
        "lint identifier-too-long: characters counted, not bytes", DJANGO_RULES,
        "        size = len(name.encode())\n",
        "        size = len(name)\n",
        f"{LINT_RULES}::test_identifier_length_counts_bytes_and_ignores_string_literals",
        "PostgreSQL truncates a name of 64 bytes: two indexes end up with one name"),
    Mutation(
        "lint squawk-ignore-without-reason: any text after -- is a reason", DJANGO_RULES,
        "        if not sep or len(reason.strip()) < MIN_REASON_LENGTH:\n",
        "        if not sep:\n",
        f"{LINT_RULES}::test_squawk_ignore_comment_counts_only_with_a_reason",
        "a squawk finding silenced with '-- ok'"),
    Mutation(
        "lint stage-not-declared: not reported", DJANGO_RULES,
        "    if declared_stage(item.migration) is None:\n",
        "    if stage_of(item.migration) is None:\n",
        f"{LINT_RULES}::test_a_migration_without_a_stage_is_reported_and_one_with_a_stage_is_not",
        "a migration without a stage is guessed into one, and a contract step runs before the "
        "rollout"),
    Mutation(
        "lint contract-operation-in-pre-deploy: DROP TRIGGER IF EXISTS not counted",
        "engine/migrations_worker/sqltext.py",
        '    "drops a trigger": re.compile(rf"\\bDROP\\s+TRIGGER\\s+(?:IF\\s+EXISTS\\s+)?'
        '(?P<name>{IDENT})", re.I),',
        '    "drops a trigger": re.compile(rf"\\bDROP\\s+TRIGGER\\s+(?P<name>{IDENT})\\s+ON\\b", re.I),',
        f"{LINT_RULES}::test_a_contract_step_in_a_pre_deploy_migration_is_reported_and_in_a_post_"
        "deploy_one_is_not",
        "the previous release relies on the trigger (its writes are captured by it) while it still "
        "runs"),
    Mutation(
        "lint pre-deploy-depends-on-post-deploy: not reported", DJANGO_RULES,
        "        if stage_of(parent) == Stage.POST:\n",
        "        if stage_of(parent) == Stage.POST and parent.app_label != item.migration.app_label:\n",
        f"{LINT_RULES}::test_a_pre_deploy_migration_after_a_post_deploy_one_is_reported",
        "the pre-deploy stage cannot apply without the post-deploy one: the rollout stalls"),
    Mutation(
        "lint exception-without-reason: any word is a reason", "engine/migrations_worker/lint/excuses.py",
        "        if not isinstance(reason, str) or len(reason.strip()) < MIN_REASON_LENGTH:\n",
        "        if not isinstance(reason, str) or not reason.strip():\n",
        f"{LINT_EXCUSES}::test_exception_without_a_reason_excuses_nothing_and_is_reported",
        "a violation excused with 'because'"),
    Mutation(
        "lint unused-exception: an exception that excuses nothing kept silently",
        "engine/migrations_worker/lint/excuses.py",
        "        if rule not in used:\n",
        "        if rule not in used and rule not in RULES and not squawk.knows_rule(rule):\n",
        f"{LINT_EXCUSES}::test_exception_excusing_nothing_is_reported_as_unused",
        "an exception outlives its cause and excuses the next breach of its rule"),
    Mutation(
        "lint unknown-rule-in-exception: a misspelt rule reported as unused",
        "engine/migrations_worker/lint/excuses.py",
        "            known = rule in RULES or squawk.knows_rule(rule)\n",
        "            known = True\n",
        f"{LINT_EXCUSES}::test_exception_for_a_rule_that_does_not_exist_is_reported_as_unknown",
        "the operator is told to remove an exception instead of fixing its rule's name"),
    Mutation(
        "lint squawk: a lock on an existing table waived by a new referencing table",
        "engine/migrations_worker/lint/squawk.py",
        "        if targets and scope <= item.new_tables:\n",
        "        if targets and targets <= item.new_tables:\n",
        "tests/unit/test_lint_squawk.py::"
        "test_lock_on_an_existing_referenced_table_is_not_waived_by_a_new_referencing_table",
        "a foreign key from a new table still locks the existing one it references"),

    # who may read the status API, who may steer a run in the admin
    Mutation(
        "status API: the view permission read without staff", "engine/migrations_worker/ops/status.py",
        "    return bool(user.is_authenticated and user.is_active and user.is_staff\n",
        "    return bool(user.is_authenticated and user.is_active\n",
        f"{STATUS_API}::test_a_logged_in_user_who_is_not_staff_is_refused_with_403[/ops/runs.json]",
        "a user whose staff status was taken away still reads every run"),
    Mutation(
        "status API: staff read runs without the view permission", "engine/migrations_worker/ops/status.py",
        "                and user.has_perm(VIEW_PERMISSION))\n",
        "                )\n",
        f"{STATUS_API}::test_staff_without_permission_to_view_runs_is_refused",
        "every staff user of the site reads the runs, their errors and hold reasons"),
    Mutation(
        "status API: the token accepted under any scheme", "engine/migrations_worker/ops/status.py",
        ' or scheme.lower() != "bearer" or not given:',
        " or not given:",
        f"{STATUS_API}::test_the_status_token_from_the_environment_lets_a_pipeline_in",
        "the token sent as Basic credentials (logged by proxies) is taken"),
    Mutation(
        "status API: a token too short to be safe accepted", "engine/migrations_worker/ops/status.py",
        "    if not expected or conf.status_token_problem() or ",
        "    if not expected or ",
        f"{STATUS_API}::test_a_status_token_shorter_than_32_characters_fails_the_check_and_is_never_accepted",
        "a guessable token opens the API"),
    Mutation(
        "admin: a run's control page open to staff without operate_jobrun",
        "engine/migrations_worker/ops/run_admin.py",
        "        if not (self.has_view_permission(request, run) and self.has_operate_permission(request)):\n",
        "        if not self.has_view_permission(request, run):\n",
        NOT_AN_OPERATOR,
        "a viewer cancels a run by posting to its control URL"),
    Mutation(
        "admin: operate_jobrun taken to be staff", "engine/migrations_worker/ops/run_admin.py",
        "        return request.user.has_perm(OPERATE)\n",
        "        return request.user.is_staff\n",
        NOT_AN_OPERATOR,
        "every staff user pauses, cancels and retries runs"),

    # the epoch fence of re-sent tasks, one active run per job
    Mutation(
        "epoch fence: a slice of an older dispatch not stopped by the worker",
        "engine/migrations_worker/runs/runner.py",
        "        if self.epoch is not None and run.dispatch_epoch != self.epoch:\n",
        "        if self.epoch is not None and run.dispatch_epoch < self.epoch:\n",
        EPOCH_FENCE,
        "a late message concludes a run that the current dispatch is working"),
    Mutation(
        "epoch fence: the claim does not check the epoch", "engine/migrations_worker/runs/claim.py",
        "    WHERE run.status = 'running' AND run.dispatch_epoch = coalesce(%(epoch)s, run.dispatch_epoch)\n",
        "    WHERE run.status = 'running'\n",
        EPOCH_FENCE,
        "a re-sent task and the one it replaced both work the run: twice the workers asked for"),
    Mutation(
        "duplicate start: a racing start fails with an IntegrityError",
        CONTROL,
        "    except IntegrityError:\n        # Another start won the race between our check and our "
        "insert.\n",
        "    except AlreadyActive:\n        # Another start won the race between our check and our "
        "insert.\n",
        RACING_START,
        "two deploys starting one job: one fails with a traceback instead of naming the run"),
    Mutation(
        "duplicate start: the one-active-run index leaves pending runs out",
        "engine/migrations_worker/migrations/0001_initial.py",
        "('status__in', ('pending', 'running', 'pausing', 'paused', 'cancelling', 'failed'))",
        "('status__in', ('running', 'pausing', 'paused', 'cancelling', 'failed'))",
        RACING_START,
        "two starts that race both make a pending run: two runs of one job"),

    # undo and its rules; migrations that go back only once nothing is lost
    Mutation(
        "undo: a re-pointed row moved since the merge moved back over the change",
        "apps/backend/src/assets/jobs/undo_rules.py",
        "    if current[\"asset_id\"] != survivor:\n",
        "    if current[\"asset_id\"] is None:\n",
        f"{DEDUP_UNDO}::test_a_row_changed_since_the_merge_is_reported_and_left_as_it_is",
        "an alert the user moved to another asset since the merge is moved back under them"),
    Mutation(
        "undo: a position bought into since the merge split back anyway",
        "apps/backend/src/assets/jobs/undo_rules.py",
        "    if now != merged:\n",
        "    if now.quantity < merged.quantity:\n",
        f"{UNDO_RULES}::test_a_position_still_as_the_merge_left_it_is_split_back_and_any_change_is_a_"
        "reason_not_to",
        "the 5 shares bought since the merge vanish when the position is split back"),
    Mutation(
        "undo: a soft-deleted holding taken into a position",
        "apps/backend/src/assets/jobs/undo_rules.py",
        '        elif row.table == HOLDINGS and not row.before.get("is_deleted"):\n',
        "        elif row.table == HOLDINGS:\n",
        f"{UNDO_RULES}::test_a_soft_deleted_holding_the_merge_repointed_is_moved_back_and_never_part_"
        "of_a_position",
        "a deleted holding's quantity split out of a live position"),
    Mutation(
        "undo: the redirect's writes put back as the merge's",
        "apps/backend/src/assets/jobs/undo_rules.py",
        "        if not row.by_merge:\n            result.written_since.append(row)\n        elif",
        "        if",
        f"{UNDO_RULES}::test_rows_the_redirect_wrote_after_the_merge_are_writes_since_whatever_their_"
        "action",
        "a write of a user after the merge is deleted or moved back by the undo"),
    Mutation(
        "undo: races a run of the job it undoes", "engine/migrations_worker/runs/undo.py",
        "    for name in (job_name, undo.name):\n",
        "    for name in (undo.name,):\n",
        f"{DEDUP_UNDO}::test_undo_is_refused_while_the_merge_has_a_run_under_way",
        "the merge and its undo interleave: half the groups merged again as they are put back"),
    Mutation(
        "undo: the schema's refusal not asked", "engine/migrations_worker/runs/undo.py",
        "        reason = undo.refusal(cursor)\n",
        "        reason = \"\"\n",
        f"{DEDUP_UNDO}::test_undo_is_refused_while_unique_stands_and_works_once_migrate_assets_0013_"
        "takes_it_back",
        "an undo against UNIQUE (ticker, exchange) fails half-way on the restored duplicates"),
    Mutation(
        "undo legacy_columns: a link re-classified since taken back",
        "apps/backend/src/assets/jobs/legacy_columns_undo.py",
        "    WHERE a.id = r.asset_id AND a.{link} = r.linked_id\n",
        "    WHERE a.id = r.asset_id\n",
        "tests/jobs/test_legacy_columns_undo.py::"
        "test_a_link_changed_since_the_job_is_reported_left_as_it_is_and_keeps_its_record",
        "the application's own classification since the job is wiped by the undo"),
    Mutation(
        "reverse: a refusal that counts what would be lost never refuses",
        "engine/migrations_worker/operations/reverse.py",
        '        return f"{found:,} {self.reason}" if found else ""\n',
        '        return ""\n',
        f"{REVERSES}::test_after_the_pre_deploy_stage_everything_goes_back_to_the_legacy_data_and_"
        "forward_again",
        "migrating back drops the archive and aliases of merged groups: their rows are gone"),
    Mutation(
        "reverse: a pending run of the job does not stop its migration going back",
        "engine/migrations_worker/operations/jobs.py",
        "        run = control.active_run(self.job_name, using=schema_editor.connection.alias)\n"
        "        if run is not None:\n",
        "        run = control.active_run(self.job_name, using=schema_editor.connection.alias)\n"
        "        if run is not None and run.status == \"running\":\n",
        f"{REVERSES}::test_a_migration_whose_job_has_a_run_under_way_is_not_taken_back_until_it_is_"
        "cancelled",
        "a queued run starts after its tables went back, on what is no longer there"),
    Mutation(
        "reverse: the job enqueued after the refusal", ASSETS_0012,
        "        EnqueueJob(\"ticker_dedup\"),\n        RefuseReverseWhile(\n" + REFUSAL_0012 + "    ]\n",
        "        RefuseReverseWhile(\n" + REFUSAL_0012 + "        EnqueueJob(\"ticker_dedup\"),\n    ]\n",
        "tests/unit/test_reverse_policy.py::test_a_refusal_is_the_last_operation_so_it_speaks_before_"
        "anything_is_undone[assets.0012_enqueue_ticker_dedup]",
        "going back, the job's operation runs first and the refusal speaks after it undid it"),

    # the redirect's rules per table (assets 0012)
    Mutation(
        "redirect: a price naming a removed asset kept beside the survivor's", ASSETS_0012,
        "    (\"assets_assetpriceshistoric\", \"assets_redirect_merged_asset('timestamp')\"),\n",
        "    (\"assets_assetpriceshistoric\", \"assets_redirect_merged_asset()\"),\n",
        f"{REDIRECT}::test_a_price_naming_a_removed_asset_replaces_the_survivors_price_at_that_time",
        "two closes for one asset at one time: charts and returns read either"),
    Mutation(
        "redirect: a deleted watch replaces the user's live one", ASSETS_0012,
        "    (\"investments_watchlist\", \"assets_redirect_merged_asset('user_id', 'live')\"),\n",
        "    (\"investments_watchlist\", \"assets_redirect_merged_asset('user_id')\"),\n",
        f"{REDIRECT}::test_a_soft_deleted_watch_naming_a_removed_asset_leaves_the_users_live_entry_as_"
        "it_is",
        "a stale save of a deleted entry silently unfollows the asset"),
    Mutation(
        "redirect: a soft-deleted holding takes the live position into it", ASSETS_0012,
        "    IF NEW.is_deleted THEN\n        RETURN NEW;  -- a soft-deleted holding moves as it is\n"
        "    END IF;\n",
        "",
        f"{REDIRECT}::test_a_soft_deleted_holding_naming_a_removed_asset_moves_as_it_is",
        "the portfolio's live position is summed into a deleted row: it disappears"),
    Mutation(
        "redirect: a re-saved holding counted twice", ASSETS_0012,
        "        IF summed_away.quantity IS NOT NULL THEN\n",
        "        IF false THEN\n",
        f"{REDIRECT}::test_a_holding_summed_away_by_the_merge_and_saved_again_replaces_its_own_share_"
        "only[30-position0]",
        "a stale save of a summed-away holding doubles its shares in the position"),
    Mutation(
        "redirect: a position's cost averaged without weights", ASSETS_0012,
        "            NEW.average_cost := round(v_cost / NEW.quantity, 8);\n",
        "            NEW.average_cost := round((NEW.average_cost + other.average_cost) / 2, 8);\n",
        f"{REDIRECT}::test_a_holding_naming_a_removed_asset_is_summed_into_the_portfolios_position_on_"
        "the_survivor",
        "10 shares at 75 and 40 at 175 average to 125, not 155"),

    # the alerts_uuid key swap (investments 0010)
    Mutation(
        "key swap: the UUID reference never validated", ALERTS_0010,
        VALIDATE_UUID_FK,
        "",
        "tests/jobs/test_alert_uuid_migrations.py::test_a_database_migrated_from_zero_has_alerts_on_a_uuid_key",
        "trigger rows written before the key was added are never checked against an alert"),
    Mutation(
        "key swap: the previous release's reference left without a foreign key", ALERTS_0010,
        LEGACY_FK,
        "",
        "tests/jobs/test_alert_uuid_migrations.py::test_a_database_migrated_from_zero_has_alerts_on_a_uuid_key",
        "the previous release's trigger rows may name an alert that is not there"),
    Mutation(
        "key swap: not guarded for a re-run after it died half-way", ALERTS_0010,
        "    IF NOT EXISTS (SELECT 1 FROM pg_index i\n",
        "    IF true OR NOT EXISTS (SELECT 1 FROM pg_index i\n",
        "tests/jobs/test_alert_uuid_migrations.py::test_a_key_swap_that_died_half_way_completes_when_migrate_runs_again[4]",
        "a deploy killed after the swap fails every time it is run again"),

    # the soft-delete fix: every model it covers
    Mutation(
        "fixed model: Country hard-deletes", "apps/backend/src/assets/models/reference/country.py",
        "class Country(TimeStampedModel, SoftDeleteModel):",
        "class Country(TimeStampedModel):",
        f"{FIXED_MODELS}[Country]", "the soft-delete fix covered by one test case per model"),
    Mutation(
        "fixed model: Currency hard-deletes", "apps/backend/src/assets/models/reference/currency.py",
        "class Currency(TimeStampedModel, SoftDeleteModel):",
        "class Currency(TimeStampedModel):",
        f"{FIXED_MODELS}[Currency]", "the soft-delete fix covered by one test case per model"),
    Mutation(
        "fixed model: Sector hard-deletes", "apps/backend/src/assets/models/reference/sector.py",
        "class Sector(TimeStampedModel, SoftDeleteModel):",
        "class Sector(TimeStampedModel):",
        f"{FIXED_MODELS}[Sector]", "the soft-delete fix covered by one test case per model"),
    Mutation(
        "fixed model: Benchmark hard-deletes", "apps/backend/src/portfolios/models/benchmark.py",
        "class Benchmark(TimeStampedModel, SoftDeleteModel):",
        "class Benchmark(TimeStampedModel):",
        f"{FIXED_MODELS}[Benchmark]", "the soft-delete fix covered by one test case per model"),
    Mutation(
        "fixed model: Alert hard-deletes", "apps/backend/src/investments/models/alert.py",
        "class Alert(UUIDModel, SoftDeleteModel):",
        "class Alert(UUIDModel):",
        f"{FIXED_MODELS}[Alert]", "the soft-delete fix covered by one test case per model"),

    # -- holds made by real conditions: lock waiters and long transactions -----------------------
    Mutation(
        "throttle: the first session queued for a row not counted",
        "engine/migrations_worker/runs/throttle.py",
        "WHERE l.pid = w.pid AND (NOT l.granted OR l.locktype = 'tuple')\n",
        "WHERE l.pid = w.pid AND NOT l.granted\n",
        f"{QUEUED_HOLDS}[a row]",
        "a request waiting on a row a batch holds waits on a transaction id, not the table: "
        "only the second in the queue would be seen"),
    Mutation(
        "throttle: a session queued for the table itself not counted",
        "engine/migrations_worker/runs/throttle.py",
        "WHERE l.pid = w.pid AND (NOT l.granted OR l.locktype = 'tuple')\n",
        "WHERE l.pid = w.pid AND l.locktype = 'tuple'\n",
        f"{QUEUED_HOLDS}[the table]",
        "an ALTER or a LOCK TABLE queued behind the job's batches, and every statement behind it"),
    Mutation(
        "throttle: a waiter in a database cloned from the same template counted",
        "engine/migrations_worker/runs/throttle.py",
        "                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())\n",
        "",
        f"{HOLDS}::test_a_session_queued_in_another_database_made_from_the_same_template_holds_nothing",
        "targets made from one template share their tables' oids: one busy database would hold "
        "the runs of every other on its server"),
    Mutation(
        "throttle: a long transaction's age read in the wrong unit",
        "engine/migrations_worker/runs/throttle.py",
        "  AND xact_start < now() - make_interval(secs => %s)\n",
        "  AND xact_start < now() - make_interval(secs => %s * 1000)\n",
        f"{HOLDS}::test_a_transaction_open_longer_than_the_run_allows_holds_it_until_the_transaction_ends",
        "a transaction open for hours holds back vacuum while the job adds dead rows"),
]
