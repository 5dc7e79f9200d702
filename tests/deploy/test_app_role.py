"""Two roles (docs/deploying.md, "What the app role may do"): the owner migrates, the app role
`manage.py grant_app_role` sets up reads and writes rows, and cannot change the schema.

On a scratch database owned by a plain (non-superuser) owner role, as on a managed server: the
owner migrates the engine, grants, then migrates the test app (its tables come after the grant,
as the next release's would); the app role then runs the test job and writes rows, and every
schema change it tries is refused by PostgreSQL itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

import psycopg
import pytest
from psycopg import errors, sql

from tests.engine_app.support import JOB, scratch_broker_url
from tests.scratch import Database, ScratchDatabase, server_url

# Throwaway passwords (the server trusts local connections; they are set, never used to log in).
APP_PASSWORD, DEPLOY_PASSWORD, DRY_RUN_PASSWORD = (secrets.token_urlsafe(16) for _ in range(3))
DDL = {
    "drop": "DROP TABLE engine_app_widget",
    "alter": "ALTER TABLE engine_app_widget ADD COLUMN extra int",
    "create": "CREATE TABLE app_made (id int)",
    "truncate": "TRUNCATE engine_app_widget",
    "index": "CREATE INDEX app_index ON engine_app_widget (value)",
    "drop-engine-table": "DROP TABLE migrations_worker_jobrun",
}


def admin(statement: sql.Composable) -> None:
    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(statement)


def role_url(role: str, database: str) -> str:
    return server_url(database).replace("://postgres@", f"://{role}@", 1)


class Roles:
    """A scratch database owned by a plain owner role, and the name of its app role."""

    def __init__(self) -> None:
        suffix = secrets.token_hex(4)
        self.owner, self.app = f"test_owner_{suffix}", f"test_app_{suffix}"
        self.scratch = ScratchDatabase(f"test_i22_roles_{suffix}")
        self.as_owner = Database(role_url(self.owner, self.scratch.name), scratch_broker_url())
        self.as_app = Database(role_url(self.app, self.scratch.name), scratch_broker_url())

    def create(self) -> Roles:
        owner = sql.Identifier(self.owner)
        # What a managed server's admin user may do: create roles, hand out the monitoring role.
        admin(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(owner))
        admin(sql.SQL("GRANT pg_read_all_stats TO {} WITH ADMIN OPTION").format(owner))
        self.scratch.create()
        admin(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(self.scratch.name),
                                                                owner))
        return self

    def drop(self) -> None:
        self.scratch.drop()
        for role in (self.app, self.owner):
            admin(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def roles():
    roles = Roles().create()
    try:
        roles.as_owner.manage("migrate", "migrations_worker", "-v", "0")
        granted = roles.as_owner.manage("grant_app_role", roles.app, "--create",
                                        env={"APP_DATABASE_PASSWORD": APP_PASSWORD})
        roles.granted_output = granted.stdout
        # The next release's migrations: tables the app role must reach without a second grant.
        roles.as_owner.manage("migrate", "engine_app", "-v", "0")
        yield roles
    finally:
        roles.drop()


def test_the_app_role_is_a_plain_login_with_a_scram_password_never_sent_or_printed(roles):
    row = roles.scratch.rows("SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, "
                             "rolpassword FROM pg_authid WHERE rolname = %s", [roles.app])
    superuser, createrole, createdb, login, stored = row[0]
    assert (superuser, createrole, createdb, login) == (False, False, False, True)
    # The server kept the verifier as sent (one it could not parse it would hash as a password):
    # its keys are those of APP_PASSWORD under its salt.
    iterations, salt, stored_key, server_key = re.fullmatch(
        r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", stored).groups()
    salted = hashlib.pbkdf2_hmac("sha256", APP_PASSWORD.encode(), base64.b64decode(salt),
                                 int(iterations))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    assert base64.b64decode(stored_key) == hashlib.sha256(client_key).digest()
    assert base64.b64decode(server_key) == hmac.digest(salted, b"Server Key", "sha256")
    assert APP_PASSWORD not in roles.granted_output
    assert "PASSWORD '********'" in roles.granted_output


def test_the_app_role_runs_a_data_job_on_tables_created_before_and_after_the_grant(roles):
    app = roles.as_app
    app.execute("DELETE FROM migrations_worker_jobrunevent")
    app.execute("DELETE FROM migrations_worker_jobrun")
    app.execute("INSERT INTO engine_app_widget (id, touches, value) "
                "SELECT g, 0, g FROM generate_series(1, 500) g")
    app.execute("SELECT setval(pg_get_serial_sequence('engine_app_widget', 'id'), 500)")
    app.manage("backfill", "run", JOB, "--option", "batch_size=100", "--option",
               "max_batch_size=100", "--option", "min_batch_size=100")
    assert app.rows("SELECT touches, count(*) FROM engine_app_widget GROUP BY 1") == [(1, 500)]
    assert app.scalar("SELECT status FROM migrations_worker_jobrun") == "finished"
    assert app.scalar("SELECT current_user") == roles.app


def test_the_app_role_claims_rows_with_skip_locked_takes_advisory_locks_and_uses_sequences(roles):
    with roles.as_app.connect() as conn, conn.transaction():
        assert conn.execute("SELECT count(*) FROM (SELECT id FROM engine_app_widget "
                            "ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED) claimed").fetchone() \
            == (10,)
        assert conn.execute("SELECT pg_try_advisory_xact_lock(42)").fetchone() == (True,)
        new_id = conn.execute("INSERT INTO engine_app_widget (touches, value) VALUES (0, 1) "
                              "RETURNING id").fetchone()[0]
        conn.execute("UPDATE engine_app_widget SET value = 2 WHERE id = %s", [new_id])
        conn.execute("DELETE FROM engine_app_widget WHERE id = %s", [new_id])


def test_the_app_role_sees_other_roles_transactions_for_the_health_holds(roles):
    with roles.as_owner.connect() as owner, owner.transaction():
        owner.execute("SELECT 1")
        pid = owner.info.backend_pid
        with roles.as_app.connect() as app:
            state, xact_start = app.execute(
                "SELECT state, xact_start FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert state == "idle in transaction"
    assert xact_start is not None


@pytest.mark.parametrize("statement", DDL.values(), ids=DDL.keys())
def test_the_app_role_cannot_change_the_schema(roles, statement):
    with roles.as_app.connect() as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_granting_again_is_harmless_and_changes_nothing_the_app_role_may_do(roles):
    roles.as_owner.manage("grant_app_role", roles.app)
    assert roles.as_app.scalar("SELECT count(*) FROM engine_app_widget") == 500
    with roles.as_app.connect() as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(DDL["drop"])


@pytest.mark.parametrize("who", ["owner", "superuser", "missing"])
def test_grant_refuses_a_role_that_is_the_owner_a_superuser_or_missing(roles, who):
    role = {"owner": roles.owner, "superuser": "postgres", "missing": f"{roles.app}_nobody"}[who]
    result = roles.as_owner.manage("grant_app_role", role, check=False)
    assert result.returncode == 2, result.stderr
    assert role in result.stderr


def test_a_dry_run_prints_the_statements_and_runs_none(roles):
    other = f"{roles.app}_dry"
    result = roles.as_owner.manage("grant_app_role", other, "--create", "--dry-run",
                                   env={"APP_DATABASE_PASSWORD": DRY_RUN_PASSWORD})
    assert f'CREATE ROLE "{other}" LOGIN' in result.stdout
    assert f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "public" TO "{other}"' \
        in result.stdout
    assert DRY_RUN_PASSWORD not in result.stdout
    assert roles.scratch.scalar("SELECT count(*) FROM pg_roles WHERE rolname = %s", [other]) == 0


def test_deploy_sh_migrates_as_the_owner_and_leaves_web_and_workers_the_app_role():
    """What compose's `migrate` does: DATABASE_URL is the app role's (web and workers keep it),
    MIGRATE_DATABASE_URL the owner's, DEPLOY_APP_ROLE the role to create and grant."""
    from tests.deploy.test_deploy_script import deploy

    roles = Roles().create()
    try:
        pre = deploy("pre", roles.as_app.url, MIGRATE_DATABASE_URL=roles.as_owner.url,
                     DEPLOY_APP_ROLE=roles.app, APP_DATABASE_PASSWORD=DEPLOY_PASSWORD)
        assert pre.returncode == 0, pre.stdout + pre.stderr
        assert f"app role {roles.app}: rows only, no schema changes" in pre.stdout
        assert roles.scratch.scalar("SELECT tableowner FROM pg_tables "
                                    "WHERE tablename = 'assets_asset'") == roles.owner
        with roles.as_app.connect() as conn:
            conn.execute("INSERT INTO auth_group (name) VALUES ('app role test')")
            conn.execute("UPDATE assets_asset SET updated_at = now()")
            conn.execute("DELETE FROM auth_group WHERE name = 'app role test'")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("DROP TABLE assets_asset")
    finally:
        roles.drop()
