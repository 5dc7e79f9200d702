"""`manage.py create_operator`: an operator's first login without `manage.py shell`, its password
from the environment or a terminal prompt, never from the command line, and checked by the
project's password validators."""

import json
import os
import pty
import secrets
import select
import subprocess
import sys
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from tests.conftest import ROOT, database_url

pytestmark = pytest.mark.django_db(transaction=True)
NO_TERMINAL = subprocess.DEVNULL  # stdin as in a pipeline, or a container started without -t


@pytest.fixture(autouse=True)
def no_password_in_the_environment(monkeypatch):
    monkeypatch.delenv("OPERATOR_PASSWORD", raising=False)


def strong() -> str:
    return secrets.token_urlsafe(16)


def test_a_password_from_the_environment_makes_a_staff_operator_who_may_steer_runs_and_rollouts(
        manage):
    password = strong()
    done = manage("create_operator", "alice", "--json", env={"OPERATOR_PASSWORD": password},
                  stdin=NO_TERMINAL)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"username": "alice", "created": True, "staff": True,
                                       "superuser": False, "group": "job operators"}
    alice = User.objects.get(username="alice")
    assert alice.is_staff and alice.is_active and not alice.is_superuser
    assert alice.check_password(password)
    assert alice.has_perms(["migrations_worker.operate_jobrun", "migrations_worker.view_jobrun",
                            "migrations_worker.change_rollout", "migrations_worker.view_rollout"])


def test_running_it_again_sets_the_new_password_from_the_variable_named(monkeypatch, capsys):
    first, second = strong(), strong()
    monkeypatch.setenv("ALICE_PASSWORD", first)
    call_command("create_operator", "alice", "--password-env", "ALICE_PASSWORD")
    assert "operator 'alice' created" in capsys.readouterr().out
    User.objects.filter(username="alice").update(is_active=False, is_staff=False)

    monkeypatch.setenv("ALICE_PASSWORD", second)
    call_command("create_operator", "alice", "--password-env", "ALICE_PASSWORD")
    assert "operator 'alice' updated (password set again)" in capsys.readouterr().out
    alice = User.objects.get(username="alice")
    assert alice.check_password(second) and not alice.check_password(first)
    assert alice.is_active and alice.is_staff and alice.groups.get().name == "job operators"


@pytest.mark.parametrize(("password", "says"), [
    ("", "OPERATOR_PASSWORD is set but empty"),
    ("password", "This password is too short. It must contain at least 12 characters."),
    ("1qaz2wsx3edc", "This password is too common."),
    ("804271953318", "This password is entirely numeric."),
    ("alice-operator", "The password is too similar to the username."),
])
def test_an_empty_or_weak_password_is_refused_with_exit_2_and_no_login_is_made(
        manage, password, says):
    done = manage("create_operator", "alice-operator", env={"OPERATOR_PASSWORD": password},
                  stdin=NO_TERMINAL)
    assert done.returncode == 2
    assert says in done.stderr
    assert not User.objects.filter(username="alice-operator").exists()


def test_without_the_variable_or_a_terminal_it_says_how_to_give_the_password(manage):
    done = manage("create_operator", "alice", stdin=NO_TERMINAL)
    assert done.returncode == 2
    assert "set the environment variable OPERATOR_PASSWORD" in done.stderr
    assert "run the command in a terminal" in done.stderr
    assert not User.objects.exists()


def test_the_password_is_no_command_line_argument_not_even_abbreviating_password_env(manage):
    password = strong()
    done = manage("create_operator", "alice", "--password", password, stdin=NO_TERMINAL)
    assert done.returncode != 0
    assert "unrecognized arguments: --password" in done.stderr
    assert not User.objects.exists()


def in_a_terminal(test_database_url: str, answers: list[str], *args: str) -> tuple[int, str]:
    """Run `manage.py create_operator` on a terminal of its own (a pty, so getpass asks there)
    and type each answer after the next prompt; its exit code and what the terminal showed."""
    env = {**os.environ, "DATABASE_URL": test_database_url,
           "SECOND_DATABASE_URL": database_url("far"),
           "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes manage.py, the pty its controlling terminal
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "manage.py", "create_operator", *args], env)
    shown = b""
    deadline = time.monotonic() + 60
    answered = 0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal, it has exited
            break
        if not chunk:
            break
        shown += chunk
        # Typed only once the prompt is there: getpass discards what was typed before it.
        prompts = shown.count(b"Password")
        if answered < min(prompts, len(answers)) and shown.rstrip().endswith(b":"):
            os.write(fd, answers[answered].encode() + b"\n")
            answered += 1
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_on_a_terminal_it_asks_twice_and_the_answers_are_not_shown(test_database_url):
    password = strong()
    code, shown = in_a_terminal(test_database_url, [password, password], "bob")
    assert code == 0, shown
    assert "Password: " in shown and "Password (again): " in shown
    assert "operator 'bob' created" in shown
    assert password not in shown
    assert User.objects.get(username="bob").check_password(password)


def test_on_a_terminal_two_different_answers_change_nothing(test_database_url):
    code, shown = in_a_terminal(test_database_url, [strong(), strong()], "bob")
    assert code == 2, shown
    assert "the two passwords differ; nothing was changed" in shown
    assert not User.objects.filter(username="bob").exists()
