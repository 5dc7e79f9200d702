"""`manage.py grant_app_role ROLE`: the role the web and the workers connect as, for data only.

    grant_app_role ROLE [--create] [--password-env NAME] [--schema public] [--dry-run]
                        [--database NAME]

Run it as the role that owns the schema (the deploy step's `MIGRATE_DATABASE_URL`), once per
database, and again whenever you like: every statement is idempotent. It grants ROLE rows,
sequences and pg_read_all_stats, and the same on what later migrations create
(`deploy.roles`; docs/deploying.md, "What the app role may do"). With `--create` a missing ROLE is
created as a plain login; the password comes from the environment variable NAME (default
APP_DATABASE_PASSWORD), never from the command line, and a role that exists gets it set again
(how it is rotated). `--dry-run` prints the statements (passwords masked) for a DBA to read and
runs none.

A command rather than a SQL file: the image has no psql, the same command reaches every target
of a fleet (`--database`), and identifiers are quoted by psycopg, not by hand. Exit codes: 0
done, 2 the role is missing (without --create), too powerful, or the owner itself, or the
password variable is empty. `--json` prints the role, the database and the statements (passwords
masked) as JSON; `--verbosity 0` prints only the last line (or, with `--dry-run`, the statements).
"""

from __future__ import annotations

import os
from typing import Any

from django.db import connections, transaction
from psycopg import sql

from migrations_worker import conf
from migrations_worker.deploy import roles
from migrations_worker.exceptions import InvalidInput
from migrations_worker.management.arguments import add_database
from migrations_worker.management.base import EngineCommand

SOURCE_VARIABLE = "APP_DATABASE_PASSWORD"  # the default of --password-env


class Command(EngineCommand):
    help = ("Grant ROLE what the web and the workers need (rows, sequences, pg_read_all_stats) "
            "and nothing on the schema; run as the schema's owner.")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        """No abbreviated options: `--password SECRET` must not pass for `--password-env`."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.allow_abbrev = False
        return parser

    def add_arguments(self, parser) -> None:
        parser.add_argument("role")
        parser.add_argument("--create", action="store_true",
                            help="create ROLE when missing (a plain login role)")
        parser.add_argument("--password-env", default=SOURCE_VARIABLE, metavar="NAME",
                            help=f"with --create: the role's password from this environment "
                                 f"variable (default {SOURCE_VARIABLE}); unset: no password")
        parser.add_argument("--schema", default="public", help="the schema (default public)")
        parser.add_argument("--dry-run", action="store_true",
                            help="print the statements, run none")
        parser.add_argument("--json", action="store_true", help="the result as JSON")
        add_database(parser)

    def handle(self, *args, **options) -> None:
        using = conf.require_target(options["database"])
        app, schema = options["role"], options["schema"]
        password = self.password(options) if options["create"] else None
        connection = connections[using]
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_database(), "
                           "EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", [app])
            owner, database, exists = cursor.fetchone()
            roles.refuse_powerful_role(cursor, app, owner)
            if not exists and not options["create"]:
                raise InvalidInput(f"role {app} does not exist: create it (--create, its password "
                                   f"in ${options['password_env']}) or ask your DBA")
            statements = roles.role_statements(app, password, exists=exists)
            statements += roles.grant_statements(app, owner, database, schema)
            if not options["dry_run"]:
                for statement in statements:
                    cursor.execute(statement)
                if self.may_create(cursor, app, schema):
                    statements.append(roles.revoke_public_create(schema))
                    cursor.execute(statements[-1])
                    if self.may_create(cursor, app, schema):
                        raise InvalidInput(f"role {app} may still create in schema {schema}: "
                                           f"revoke CREATE from the role it inherits it from")
            shown = [self.shown(statement, connection) for statement in statements]
        self.report(options, {"role": app, "database": using, "schema": schema,
                              "dry_run": options["dry_run"], "statements": shown},
                    f"{app} may read and write rows in {database}.{schema}, and change nothing else.")

    def report(self, options, result: dict[str, Any], done: str) -> None:
        if options["json"]:
            return self.print_json(result)
        if options["dry_run"] or self.verbosity >= 1:
            for statement in result["statements"]:
                self.stdout.write(statement + ";")
        if not options["dry_run"]:
            self.stdout.write(done)

    @staticmethod
    def may_create(cursor, app: str, schema: str) -> bool:
        cursor.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')", [app, schema])
        return cursor.fetchone()[0]

    @staticmethod
    def password(options) -> str | None:
        name = options["password_env"]
        if name not in os.environ:
            return None
        if not os.environ[name]:
            raise InvalidInput(f"${name} is set but empty: give the role a password or unset it")
        return os.environ[name]

    @staticmethod
    def shown(statement: sql.Composable, connection) -> str:
        """The statement as printed: a password's verifier masked."""
        connection.ensure_connection()
        text = statement.as_string(connection.connection)
        head, found, _rest = text.partition(" PASSWORD ")
        return f"{head} PASSWORD '********'" if found else text
