"""The application's database role: data only, never the schema (docs/deploying.md, "Two roles").

The deploy step connects as the role that owns the schema (it creates tables, indexes, triggers
and constraints); the web and the workers connect as a second role that may read and write rows
and nothing else, so a bug or an injection in the application cannot drop, alter or truncate a
table. What a data job needs is granted, and only that:

- rows of every table of the schema: SELECT, INSERT, UPDATE, DELETE (SELECT ... FOR UPDATE SKIP
  LOCKED needs UPDATE); not TRUNCATE, REFERENCES or TRIGGER;
- sequences: USAGE, SELECT, UPDATE (nextval for inserts, setval after a bulk load);
- `pg_read_all_stats`: the health holds read other roles' transactions in pg_stat_activity and
  the standbys' positions in pg_stat_replication, which PostgreSQL hides from anyone else;
- the same on tables and sequences the owner creates later (ALTER DEFAULT PRIVILEGES), so the
  next release's migrations need no second grant.

Advisory locks and pg_locks need no grant. USAGE on the schema without CREATE: the role cannot
create a table; before PostgreSQL 15 every role may create in `public`, so that right is revoked
from PUBLIC when the app role would have it.

Statements go through psycopg's `sql` module. A password is sent as a SCRAM-SHA-256 verifier
computed here, never as text: the server's statement log would keep it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from psycopg import sql

from ..exceptions import InvalidInput

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")
STATS_ROLE = "pg_read_all_stats"
SCRAM_ITERATIONS = 4096


def scram_verifier(password: str) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677, the server's format)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return (f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}"
            f"${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}")


def role_statements(app: str, password: str | None, *, exists: bool) -> list[sql.Composable]:
    """Create the app role (a login without any attribute beyond it), or set its password."""
    role = sql.Identifier(app)
    secret = sql.SQL(" PASSWORD {}").format(sql.Literal(scram_verifier(password))) if password \
        else sql.SQL("")
    if exists:
        return [sql.SQL("ALTER ROLE {}{}").format(role, secret)] if password else []
    return [sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
                    "{}").format(role, secret)]


def grant_statements(app: str, owner: str, database: str, schema: str) -> list[sql.Composable]:
    """Everything the app role may do in `schema` of `database`, now and after later migrations."""
    role, owner_id, schema_id = sql.Identifier(app), sql.Identifier(owner), sql.Identifier(schema)
    tables = sql.SQL(", ").join(map(sql.SQL, TABLE_PRIVILEGES))
    sequences = sql.SQL(", ").join(map(sql.SQL, SEQUENCE_PRIVILEGES))
    return [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema_id, role),
        sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA {} TO {}").format(tables, schema_id, role),
        sql.SQL("GRANT {} ON ALL SEQUENCES IN SCHEMA {} TO {}").format(sequences, schema_id, role),
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT {} ON TABLES TO {}")
        .format(owner_id, schema_id, tables, role),
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT {} ON SEQUENCES TO {}")
        .format(owner_id, schema_id, sequences, role),
        sql.SQL("GRANT {} TO {}").format(sql.Identifier(STATS_ROLE), role),
    ]


def revoke_public_create(schema: str) -> sql.Composable:
    """Before PostgreSQL 15 (or on a database created from such a template), PUBLIC may create
    tables in `public`: the app role would inherit that right."""
    return sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema))


def refuse_powerful_role(cursor, app: str, owner: str) -> None:
    """A role that owns the schema (or may become its owner) is no app role: granting it less
    would change nothing."""
    if app == owner:
        raise InvalidInput(f"{app} is the role this command runs as, the schema's owner: the app "
                           "role must be another one")
    cursor.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, "
                   "pg_has_role(%s, %s, 'MEMBER') FROM pg_roles WHERE rolname = %s",
                   [app, owner, app])
    row = cursor.fetchone()
    if row is None:
        return
    powers = [name for name, held in zip(
        ("SUPERUSER", "CREATEROLE", "CREATEDB", "BYPASSRLS", f"member of {owner}"), row,
        strict=True) if held]
    if powers:
        raise InvalidInput(f"role {app} has {', '.join(powers)}: it could undo what this command "
                           "restricts; use a plain login role")
