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

MUTATIONS: list[Mutation] = [
    # -- item 5: a secret committed in each form the scan used to miss -------------------------
    Mutation(
        "secret: unquoted SECRET_KEY= in a shell script", "deploy/deploy.sh",
        "DEPLOY_WAIT_TIMEOUT=${DEPLOY_WAIT_TIMEOUT:-}\n",
        "DEPLOY_WAIT_TIMEOUT=${DEPLOY_WAIT_TIMEOUT:-}\nSECRET_KEY=" + KEY + "\n",
        NO_SECRET, "the old scan only saw a quoted SECRET_KEY"),
    Mutation(
        "secret: compose list form - SECRET_KEY=", "docker-compose.yml",
        "    image: redis:",
        "    environment:\n      - SECRET_KEY=" + KEY + "\n    image: redis:",
        NO_SECRET, "a compose environment written as a list"),
    Mutation(
        "secret: YAML POSTGRES_PASSWORD:", "docker-compose.yml",
        "      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in the environment or .env}\n",
        "      POSTGRES_PASSWORD: " + PASSWORD + "\n",
        NO_SECRET, "an unquoted YAML value"),
    Mutation(
        'secret: JSON {"password": ...}', "docs/operating.md",
        "## Configuration\n",
        '## Configuration\n\n```json\n{"user": "investments", "password": "' + PASSWORD + '"}\n```\n',
        NO_SECRET, "a JSON document (here in the docs)"),
    Mutation(
        "secret: an 11-character password", "apps/backend/src/config/settings/dev.py",
        'DEBUG = env_bool("DEBUG", True)\n',
        'DEBUG = env_bool("DEBUG", True)\nEMAIL_HOST_PASSWORD = "' + ELEVEN + '"\n',
        NO_SECRET, "the old scan wanted 12 characters or more"),
    Mutation(
        "secret: a URL password holding $", "docker-compose.yml",
        "    REDIS_URL: redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD in the environment or .env}"
        "@redis:6379/0\n",
        "    REDIS_URL: redis://default:" + PASSWORD[:8] + "$" + PASSWORD[8:] + "@redis:6379/0\n",
        NO_SECRET, "the old scan (and detect-secrets' BasicAuthDetector) stop at a $"),
    Mutation(
        "secret: export DJANGO_SECRET_KEY=", "deploy/deploy.sh",
        'cd "$ROOT"\n',
        'cd "$ROOT"\nexport DJANGO_SECRET_KEY=' + KEY + "\n",
        NO_SECRET, "an exported variable whose name only contains SECRET_KEY"),
    Mutation(
        "secret: in the scan's own file", SECURITY,
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
        "                    result = self.job.process_batch(cursor, claim.start, claim.end)\n",
        "                    result = self.job.process_batch(cursor, claim.start, claim.end)\n"
        "                    cursor.execute('COMMIT')\n",
        EXACTLY_ONCE, "a kill between the two commits leaves data done and the batch to do again"),
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
]
