"""`manage.py create_operator USERNAME`: the first (or any) operator's login, without `shell`.

    create_operator USERNAME [--password-env NAME] [--json]

The user becomes staff in the operators group (`admin.operators_group`: see runs, batches and
rollouts, and steer them: pause/resume/cancel/retry, fleet pause/resume/retry/skip), never a
superuser. The command is the engine's because that group and its permissions are: a project
that installs the engine gets its operators' logins with it.

The password comes from the environment variable NAME (default OPERATOR_PASSWORD: what a
container or a pipeline sets) or, when that is unset, from a prompt asked twice on a terminal;
never from the command line, where `ps` and the shell history would show it. It must pass the
project's AUTH_PASSWORD_VALIDATORS. Running the command again for the same user sets the new
password (and puts the user back in the group, staff and active): it is how an operator's
password is reset. Exit codes: 0 done, 2 no password, an empty or weak one, or prompts that
differ.
"""

from __future__ import annotations

import getpass
import json
import os
import sys

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from migrations_worker.admin import OPERATORS_GROUP, ensure_operator
from migrations_worker.exceptions import InvalidInput
from migrations_worker.management.base import EngineCommand

SOURCE_VARIABLE = "OPERATOR_PASSWORD"  # the default of --password-env


class Command(EngineCommand):
    help = ("Create an operator's admin login (staff, in the operators group), or set its "
            "password again. The password comes from an environment variable or a prompt.")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        """No abbreviated options: argparse would read `--password SECRET` as `--password-env
        SECRET` and print the password back in its error."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.allow_abbrev = False
        return parser

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--password-env", default=SOURCE_VARIABLE, metavar="NAME",
                            help=f"read the password from this environment variable (default "
                                 f"{SOURCE_VARIABLE}); unset: ask on the terminal")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options) -> None:
        username = options["username"].strip()
        if not username:
            raise InvalidInput("USERNAME is empty")
        password = self.password(options["password_env"])
        existing = User.objects.filter(username=username).first()
        try:
            validate_password(password, existing or User(username=username))
        except ValidationError as exc:
            raise InvalidInput("the password is too weak: " + " ".join(exc.messages)) from exc
        with transaction.atomic():
            ensure_operator(username, password)
        result = {"username": username, "created": existing is None, "staff": True,
                  "superuser": bool(existing and existing.is_superuser), "group": OPERATORS_GROUP}
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        done = "created" if result["created"] else "updated (password set again)"
        self.stdout.write(f"operator {username!r} {done}: staff, in group {OPERATORS_GROUP!r} "
                          "(may view and steer runs and fleet rollouts); log in at /admin/")

    def password(self, variable: str) -> str:
        """From the environment when the variable is set (even to "", which is refused), else
        from the terminal; without either, say how to give one."""
        if variable in os.environ:
            if not os.environ[variable]:
                raise InvalidInput(f"{variable} is set but empty: put the operator's password in it")
            return os.environ[variable]
        if not sys.stdin.isatty():
            raise InvalidInput(f"the password is missing: set the environment variable {variable} (or name "
                         "another with --password-env), or run the command in a terminal to "
                         "be asked for it")
        first = getpass.getpass("Password: ")
        if not first:
            raise InvalidInput("the password is empty")
        if getpass.getpass("Password (again): ") != first:
            raise InvalidInput("the two passwords differ; nothing was changed")
        return first
