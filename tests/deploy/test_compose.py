"""docker-compose.yml and deploy/Dockerfile, checked without Docker.

Docker cannot run here, so every service's command is resolved against the project itself:
manage.py commands through Django's `get_commands()` and the command's own argument parser,
celery sub-commands through celery's CLI (which also loads the `-A` app), gunicorn through
`gunicorn --check-config` (which imports the WSGI application), scripts by path. Each runs in a
subprocess with production settings, the way the container runs them.
"""

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config.settings.base import LOCAL_DATABASE_URL, LOCAL_REDIS_URL
from migrations_worker import conf

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
VENV_BIN = Path(sys.executable).parent

APP_SERVICES = ("migrate", "migrate-post", "web", "worker", "beat", "flower")
DESIGNED_SERVICES = {"postgres", "redis", *APP_SERVICES}

# What `docker compose` would be given: the required secrets and nothing else (.env.example).
COMPOSE_ENV = {
    "SECRET_KEY": secrets.token_urlsafe(64),
    "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
    "APP_DATABASE_PASSWORD": secrets.token_urlsafe(16),
    "REDIS_PASSWORD": secrets.token_urlsafe(16),
    "FLOWER_BASIC_AUTH": f"ops:{secrets.token_urlsafe(16)}",
}


# --- compose variable interpolation -----------------------------------------------------------


class MissingVariable(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"required variable {name} is missing: {message}")
        self.name = name


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>" + _NAME + "))")
_BRACED = re.compile(r"(?P<name>" + _NAME + r")(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$` substitution."""

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.fullmatch(match["braced"])
        if braced is None:
            raise ValueError(f"invalid interpolation: {match[0]}")
        name, op, arg = braced["name"], braced["op"], braced["arg"]
        current = env.get(name)
        if op is None:
            return current or ""
        unset_or_empty = not current if op.startswith(":") else current is None
        if op.endswith("-"):
            return arg if unset_or_empty else current
        if op.endswith("?"):
            if unset_or_empty:
                raise MissingVariable(name, arg)
            return current
        return "" if unset_or_empty else arg  # ":+" / "+"

    return _REFERENCE.sub(substitute, value)


def interpolate_all(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_all(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_all(value, env) for key, value in node.items()}
    return node


def load_raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def raw() -> dict:
    return load_raw()


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate_all(raw, COMPOSE_ENV)


def as_argv(command) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


# --- resolving commands against the project -----------------------------------------------------


def production_env() -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "localhost",
        "DATABASE_URL": os.environ.get("DATABASE_URL", LOCAL_DATABASE_URL),
        "REDIS_URL": os.environ.get("REDIS_URL", LOCAL_REDIS_URL),
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=ROOT, env=production_env(), capture_output=True, text=True, timeout=timeout
    )


def failure(what: str, result: subprocess.CompletedProcess) -> str:
    output = (result.stdout + result.stderr).strip().splitlines()
    return f"{what} (exit {result.returncode}): " + " | ".join(output[-6:])


# Runs in a subprocess under production settings: the command must be one Django knows, and its
# arguments must satisfy the command's own parser.
_MANAGE_PY_CHECK = """
import json, sys
sys.path.insert(0, "apps/backend/src")
import django
django.setup()
from django.core.management import get_commands, load_command_class
argv = json.loads(sys.argv[1])
commands = get_commands()
if argv[0] not in commands:
    sys.exit(f"manage.py has no command {argv[0]!r}")
command = load_command_class(commands[argv[0]], argv[0])
command.create_parser("manage.py", argv[0]).parse_args(argv[1:])
"""


def manage_py_problems(args: list[str]) -> list[str]:
    if not args:
        return ["manage.py without a command"]
    result = run([sys.executable, "-c", _MANAGE_PY_CHECK, json.dumps(args)])
    return [] if result.returncode == 0 else [failure(f"manage.py {' '.join(args)}", result)]


def flower_option_problems(tornado_argv: list[str]) -> list[str]:
    # Flower silently drops options it does not know, so an unknown one must be caught here.
    from flower.options import options

    problems = []
    for arg in tornado_argv:
        if not arg.startswith("--"):
            problems.append(f"flower: unexpected argument {arg!r}")
            continue
        name = arg[2:].partition("=")[0]
        if name not in options:
            problems.append(f"flower has no option --{name}")
    return problems


def celery_problems(args: list[str]) -> list[str]:
    problems = []
    if "-A" not in args and "--app" not in args and not any(a.startswith("--app=") for a in args):
        problems.append("celery without -A: it would not load the project's app")
    subcommand_at = None
    index = 0
    while index < len(args):
        if args[index] in ("-A", "--app", "-b", "--broker", "--result-backend", "--config"):
            index += 2
            continue
        if not args[index].startswith("-"):
            subcommand_at = index
            break
        index += 1
    if subcommand_at is None:
        return [*problems, "celery without a sub-command"]
    subcommand = args[subcommand_at]
    # --help is eager: click still rejects unknown sub-commands and options, loads the -A app,
    # and then exits without starting anything.
    result = run([str(VENV_BIN / "celery"), *args, "--help"])
    if result.returncode != 0 or f"Usage: celery {subcommand}" not in result.stdout:
        problems.append(failure(f"celery {' '.join(args)}", result))
    if subcommand == "flower":
        problems += flower_option_problems(args[subcommand_at + 1 :])
    return problems


def gunicorn_problems(args: list[str]) -> list[str]:
    # --check-config validates every option and imports the WSGI application, then exits.
    result = run([str(VENV_BIN / "gunicorn"), "--check-config", *args])
    return [] if result.returncode == 0 else [failure(f"gunicorn {' '.join(args)}", result)]


def script_problems(path: str, workdir: str) -> list[str]:
    relative = path.removeprefix(workdir.rstrip("/") + "/").removeprefix("./")
    if relative.startswith("/"):
        return [f"{path} is outside the image's working directory {workdir}"]
    script = ROOT / relative
    if not script.is_file():
        return [f"{path} does not exist in the project"]
    if not os.access(script, os.X_OK):
        return [f"{path} is not executable"]
    return []


def command_problems(argv: list[str], workdir: str = "/app") -> list[str]:
    """Why `argv`, run in the application image, would not work; [] when it refers only to
    things that exist in the project."""
    if not argv:
        return ["empty command"]
    program, args = argv[0], argv[1:]
    if program in ("python", "python3"):
        if args[:1] == ["manage.py"]:
            return manage_py_problems(args[1:])
        if args[:1] == ["-c"] and len(args) >= 2:
            try:
                compile(args[1], "<healthcheck>", "exec")
            except SyntaxError as exc:
                return [f"python -c: {exc}"]
            return []
        return [f"python {' '.join(args)}: expected manage.py or -c"]
    if program == "celery":
        return celery_problems(args)
    if program == "gunicorn":
        return gunicorn_problems(args)
    if program in ("sh", "bash") and args and not args[0].startswith("-"):
        return script_problems(args[0], workdir)
    if "/" in program:
        return script_problems(program, workdir)
    return [f"{program}: not a program the application image provides"]


def dockerfile_workdir() -> str:
    workdirs = re.findall(r"^WORKDIR\s+(\S+)", (ROOT / "deploy" / "Dockerfile").read_text(), re.M)
    return workdirs[-1] if workdirs else "/"


def healthcheck_argv(test) -> list[str]:
    argv = as_argv(test)
    if argv[:1] == ["CMD"]:
        return argv[1:]
    words = shlex.split(" ".join(argv[1:])) if argv[:1] == ["CMD-SHELL"] else argv
    # The first command of a shell line (before ||, &&, ;, |).
    for index, word in enumerate(words):
        if word in ("||", "&&", ";", "|"):
            return words[:index]
    return words


# --- the services -------------------------------------------------------------------------------


def test_compose_defines_the_services_of_the_design(compose):
    assert set(compose["services"]) == DESIGNED_SERVICES


def test_backing_services_are_postgres_15_and_redis_7(compose):
    assert re.fullmatch(r"postgres:15([.-].*)?", compose["services"]["postgres"]["image"])
    assert re.fullmatch(r"redis:7([.-].*)?", compose["services"]["redis"]["image"])


# An exact release (PostgreSQL's 15.17, Redis's 7.4.7; a variant after it) and the digest of its
# image index: the same bytes on every host and every rebuild (docs/design.md, "Locked versions").
PINNED_IMAGE = re.compile(r"[a-z0-9./-]+:\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?@sha256:[0-9a-f]{64}")


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_backing_service_images_are_pinned_to_a_release_and_digest(compose, service):
    assert PINNED_IMAGE.fullmatch(compose["services"][service]["image"])


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_is_built_from_the_project_dockerfile(compose, service):
    build = compose["services"][service]["build"]
    context = ROOT / build["context"]
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    assert context.resolve() == ROOT
    assert dockerfile.is_file(), f"{service}: {dockerfile} does not exist"
    assert dockerfile.resolve() == ROOT / "deploy" / "Dockerfile"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_command_refers_to_things_that_exist(compose, service):
    spec = compose["services"][service]
    assert "command" in spec, f"{service} relies on the image's default command"
    assert command_problems(as_argv(spec["command"]), dockerfile_workdir()) == []


@pytest.mark.parametrize("service", ["web", "worker", "beat", "flower"])
def test_app_service_healthcheck_refers_to_things_that_exist(compose, service):
    argv = healthcheck_argv(compose["services"][service]["healthcheck"]["test"])
    assert command_problems(argv, dockerfile_workdir()) == []


@pytest.mark.parametrize(
    ("service", "program"),
    [("postgres", "pg_isready"), ("redis", "redis-cli")],
)
def test_backing_service_healthcheck_uses_the_images_own_client(compose, service, program):
    assert healthcheck_argv(compose["services"][service]["healthcheck"]["test"])[0] == program


@pytest.mark.parametrize(
    "argv",
    [
        ["python", "manage.py", "no_such_command"],
        ["python", "manage.py", "migrate", "--no-such-option"],
        ["celery", "-A", "migrations_worker", "no-such-subcommand"],
        ["celery", "-A", "no_such_module", "worker"],
        ["celery", "-A", "migrations_worker", "worker", "--no-such-option"],
        ["celery", "-A", "migrations_worker", "flower", "--no-such-flower-option=1"],
        ["gunicorn", "--chdir", "apps/backend/src", "config.no_such_module:application"],
        ["gunicorn", "config.wsgi:application"],  # config is not importable from /app as is
        ["deploy/no_such_script.sh"],
        ["bash", "deploy/no_such_script.sh"],
        ["deploy/Dockerfile"],  # exists, not executable
        ["no-such-program"],
    ],
)
def test_command_check_rejects_what_does_not_exist(argv):
    assert command_problems(argv) != []


def test_command_check_accepts_an_executable_script_under_deploy():
    assert command_problems(["deploy/services.sh", "status"]) == []
    assert command_problems(["/app/deploy/services.sh", "status"]) == []


def test_celery_app_module_holds_the_projects_celery_app():
    from celery import Celery
    from celery.app.utils import find_app

    app = find_app("migrations_worker")
    assert isinstance(app, Celery)
    assert app.main == "migrations_worker"


def test_worker_consumes_every_queue_tasks_are_routed_to(compose, settings):
    argv = as_argv(compose["services"]["worker"]["command"])
    queues = set()
    for flag in ("-Q", "--queues"):
        if flag in argv:
            queues |= set(argv[argv.index(flag) + 1].split(","))
    # The engine names its queue on each of its messages, whatever the routes say.
    routed = {settings.CELERY_TASK_DEFAULT_QUEUE, conf.get("QUEUE")}
    routed |= {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed <= queues


# --- the Dockerfile -----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_starts_from_python_3_11_slim_pinned_to_a_release_and_digest():
    froms = [rest.split()[0] for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    assert froms
    assert all(PINNED_IMAGE.fullmatch(image) for image in froms), froms
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?@.*", froms[-1])


def test_dockerfile_installs_the_project_with_pip_from_pyproject():
    instructions = dockerfile_instructions()
    copy_pyproject = next(
        i for i, (kw, rest) in enumerate(instructions) if kw == "COPY" and "pyproject.toml" in rest
    )
    pip_install = next(
        i
        for i, (kw, rest) in enumerate(instructions)
        if kw == "RUN" and re.search(r"\bpip install\b.*\s\.(\s|$|\[)", rest + " ")
    )
    assert copy_pyproject < pip_install


def test_dockerfile_runs_as_a_non_root_user():
    users = [rest.split(":")[0] for keyword, rest in dockerfile_instructions() if keyword == "USER"]
    assert users, "no USER instruction: the container would run as root"
    assert users[-1] not in ("root", "0")


def test_dockerfile_selects_production_settings():
    env_lines = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "ENV")
    assert re.search(r"\bDJANGO_SETTINGS_MODULE=config\.settings\.production\b", env_lines)


def test_dockerfile_collects_the_static_files_at_build_time_with_the_code_in_place():
    # Served by WhiteNoise from STATIC_ROOT (production.py); tests/deploy/test_static_files.py
    # runs the same command and the admin in a browser.
    instructions = dockerfile_instructions()
    collect = next(i for i, (kw, rest) in enumerate(instructions)
                   if kw == "RUN" and re.search(r"\bmanage\.py collectstatic --noinput\b", rest))
    copy_code = next(i for i, (kw, rest) in enumerate(instructions) if (kw, rest) == ("COPY", ". ."))
    user = max(i for i, (kw, _rest) in enumerate(instructions) if kw == "USER")
    assert copy_code < collect < user
    assert "SECRET_KEY=$(python -c" in instructions[collect][1], "a key generated for the build"


def test_dockerignore_keeps_local_state_and_secrets_out_but_not_the_code():
    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".venv", ".local", ".env", ".git"):
        assert excluded in patterns, f"{excluded} would be sent to the Docker daemon"
    for needed in ("manage.py", "pyproject.toml", "apps", "engine", "deploy"):
        assert not any(Path(needed).match(pattern) for pattern in patterns), needed


# --- secrets, auth, exposure, ordering ----------------------------------------------------------

_SECRET_NAME = re.compile(r"SECRET|PASS|TOKEN|CREDENTIAL|BASIC_AUTH|API_KEY", re.I)
_REQUIRED_REFERENCE = re.compile(r"\$\{" + _NAME + r":?\?[^}]*\}")
_ANY_REFERENCE = re.compile(r"\$\{[^}]*\}")
_URL_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<userinfo>[^/]*)@")


def secret_literals(node, where: str = "") -> list[str]:
    """Places in the raw compose document where a secret is anything but a required `${VAR:?}`."""
    found = []

    def check(value: str, place: str) -> None:
        if not _REQUIRED_REFERENCE.fullmatch(value):
            found.append(f"{place}: {value!r}")

    if isinstance(node, dict):
        for key, value in node.items():
            place = f"{where}.{key}"
            if isinstance(value, str | int | float) and _SECRET_NAME.search(str(key)):
                check(str(value), place)
            else:
                found += secret_literals(value, place)
    elif isinstance(node, list):
        previous = ""
        for index, item in enumerate(node):
            place = f"{where}[{index}]"
            if isinstance(item, str) and _SECRET_NAME.search(previous) and previous.startswith("-"):
                check(item, place)  # --password VALUE
            found += secret_literals(item, place)
            previous = item if isinstance(item, str) else ""
    elif isinstance(node, str):
        name, sep, value = node.partition("=")
        if sep and _SECRET_NAME.search(name.lstrip("-").replace("-", "_")):
            check(value, where)  # KEY=VALUE (list-form environment) or --basic-auth=VALUE
        # Hide references (they may contain ':' and '@') before reading a URL's password.
        references: dict[str, str] = {}

        def hide(match: re.Match) -> str:
            token = f"<{len(references)}>"
            references[token] = match[0]
            return token

        url = _URL_USERINFO.match(_ANY_REFERENCE.sub(hide, node))
        if url and ":" in url["userinfo"]:
            password = url["userinfo"].split(":", 1)[1]
            check(references.get(password, password), f"{where} (URL password)")
    return found


def test_compose_holds_no_secret_values_only_required_references(raw):
    assert secret_literals(raw) == []


@pytest.mark.parametrize(
    "document",
    [
        {"environment": {"SECRET_KEY": "a-literal-secret"}},
        {"environment": {"POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:-changeme}"}},
        {"environment": {"POSTGRES_PASSWORD": "${POSTGRES_PASSWORD}"}},
        {"environment": ["SECRET_KEY=a-literal-secret"]},
        {"environment": {"DATABASE_URL": "postgres://app:hunter2@postgres:5432/db"}},
        {"command": ["celery", "flower", "--basic-auth=admin:admin"]},
        {"command": ["redis-server", "--requirepass", "hunter2"]},
    ],
)
def test_secret_check_finds_literal_or_optional_secrets(document):
    assert secret_literals(document) != []


@pytest.mark.parametrize("name", sorted(COMPOSE_ENV))
def test_compose_refuses_to_start_without_each_secret(raw, name):
    with pytest.raises(MissingVariable) as excinfo:
        interpolate_all(raw, {k: v for k, v in COMPOSE_ENV.items() if k != name})
    assert excinfo.value.name == name


def test_app_services_get_every_secret_from_the_environment(compose):
    for service in APP_SERVICES:
        environment = compose["services"][service]["environment"]
        assert environment["SECRET_KEY"] == COMPOSE_ENV["SECRET_KEY"], service
        assert environment["DATABASE_URL"].startswith(
            f"postgres://investments_app:{COMPOSE_ENV['APP_DATABASE_PASSWORD']}@"), service
        assert environment["REDIS_URL"] == \
            f"redis://:{COMPOSE_ENV['REDIS_PASSWORD']}@redis:6379/0", service
        assert environment["DJANGO_SETTINGS_MODULE"] == "config.settings.production", service


@pytest.mark.parametrize("service", ["migrate", "migrate-post"])
def test_only_the_deploy_step_connects_as_the_schema_owner(compose, service):
    environment = compose["services"][service]["environment"]
    assert environment["MIGRATE_DATABASE_URL"].startswith(
        f"postgres://investments:{COMPOSE_ENV['POSTGRES_PASSWORD']}@postgres:5432/")
    assert environment["DEPLOY_APP_ROLE"] == "investments_app"
    assert environment["APP_DATABASE_PASSWORD"] == COMPOSE_ENV["APP_DATABASE_PASSWORD"]


@pytest.mark.parametrize("service", ["web", "worker", "beat", "flower"])
def test_long_running_app_services_never_hold_the_owners_password(compose, service):
    assert COMPOSE_ENV["POSTGRES_PASSWORD"] not in json.dumps(compose["services"][service])


def test_flower_reads_basic_auth_from_its_environment_not_its_command_line(raw, compose):
    flower = compose["services"]["flower"]
    assert not any(arg.startswith("--basic-auth") for arg in as_argv(flower["command"]))
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?[^}]+\}",
                        raw["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"])
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == COMPOSE_ENV["FLOWER_BASIC_AUTH"]


def test_no_secret_is_on_any_command_line(compose):
    for name, service in compose["services"].items():
        argvs = [service.get("command", []), service.get("healthcheck", {}).get("test", [])]
        for argv in argvs:
            text = json.dumps(argv)
            for variable, value in COMPOSE_ENV.items():
                assert value not in text, f"{name}: {variable} on a command line"


def published_host_ips(ports: list) -> list[tuple[str, str]]:
    """(host ip, port spec) for each published port; '' when bound to every interface."""
    published = []
    for port in ports:
        if isinstance(port, dict):
            published.append((port.get("host_ip", ""), str(port)))
            continue
        spec = str(port).split("/")[0]
        if spec.startswith("["):
            published.append((spec[1 : spec.index("]")], str(port)))
            continue
        parts = spec.split(":")
        published.append((parts[0] if len(parts) == 3 else "", str(port)))
    return published


def test_published_ports_are_bound_to_loopback_only(compose):
    for name, service in compose["services"].items():
        for host_ip, spec in published_host_ips(service.get("ports", [])):
            assert host_ip == "127.0.0.1", f"{name} publishes {spec} beyond loopback"


def test_port_check_sees_ports_published_on_every_interface():
    assert published_host_ips(["8000:8000", "8000", {"target": 80, "published": 8000}]) == [
        ("", "8000:8000"),
        ("", "8000"),
        ("", "{'target': 80, 'published': 8000}"),
    ]


@pytest.mark.parametrize(("service", "port"), [("web", 8000), ("flower", 5555)])
def test_web_and_flower_are_published_on_loopback(compose, service, port):
    assert f"127.0.0.1:{port}:{port}" in compose["services"][service]["ports"]


@pytest.mark.parametrize("service", ["postgres", "redis", "web", "worker", "beat", "flower"])
def test_long_running_service_has_a_healthcheck(compose, service):
    assert compose["services"][service]["healthcheck"]["test"]


def test_every_dependency_has_a_condition_that_can_be_met(compose):
    services = compose["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, spec in depends_on.items():
            condition = spec["condition"]
            assert condition in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }, f"{name} -> {dependency}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


@pytest.mark.parametrize(("service", "after_migrate"), [
    ("web", "service_completed_successfully"),
    ("beat", "service_completed_successfully"),
    ("worker", "service_started"),  # a gate of the pre stage waits for a job only it runs
])
def test_app_starts_after_migrate_on_a_healthy_database(compose, service, after_migrate):
    depends_on = compose["services"][service]["depends_on"]
    assert depends_on["migrate"]["condition"] == after_migrate
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_migrate_runs_the_pre_deploy_stage_once_on_a_healthy_database(compose):
    migrate = compose["services"]["migrate"]
    assert migrate.get("restart", "no") == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert as_argv(migrate["command"]) == ["deploy/deploy.sh", "pre"]


def test_the_post_deploy_stage_runs_once_after_the_new_release_is_healthy(compose):
    post = compose["services"]["migrate-post"]
    assert post.get("restart", "no") == "no"
    assert as_argv(post["command"]) == ["deploy/deploy.sh", "post"]
    assert post["depends_on"]["web"]["condition"] == "service_healthy"
    assert post["depends_on"]["worker"]["condition"] == "service_healthy"
