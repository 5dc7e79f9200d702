"""docker-compose.yml through Compose's own `config`, with the example environment: the file is
one Compose accepts, each secret `.env.example` leaves empty stops it until filled in, and the
resolved services (anchors merged, variables substituted, as `up` would run them) have the
health checks, the order and the command lines the design says. Compose is required: without it
the tests fail and say what to install (`deploy/compose_cli.sh`)."""

from __future__ import annotations

import json

import pytest

from tests.deploy.compose import (
    compose_config,
    dependencies,
    generated_secrets,
    healthcheck_argv,
    required_secrets,
    resolved_services,
    start_waves,
)
from tests.deploy.test_compose import APP_SERVICES, DESIGNED_SERVICES

SECRETS = generated_secrets()


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return resolved_services(SECRETS)


def test_compose_accepts_the_file_with_the_example_environment_and_its_secrets_filled_in():
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr


def test_the_example_leaves_exactly_the_secrets_compose_requires_to_fill_in():
    assert set(required_secrets()) == {"SECRET_KEY", "POSTGRES_PASSWORD", "APP_DATABASE_PASSWORD",
                                       "REDIS_PASSWORD", "FLOWER_BASIC_AUTH"}


@pytest.mark.parametrize("missing", required_secrets())
def test_compose_refuses_to_run_while_a_secret_of_the_example_is_empty_and_names_it(missing):
    result = compose_config({name: value for name, value in SECRETS.items() if name != missing})
    assert result.returncode != 0
    assert f"set {missing} " in result.stderr, result.stderr


def test_compose_resolves_the_services_of_the_design(services):
    assert set(services) == DESIGNED_SERVICES


@pytest.mark.parametrize("service", sorted(DESIGNED_SERVICES - {"migrate", "migrate-post"}))
def test_every_long_running_service_has_a_health_check_compose_runs(services, service):
    argv = healthcheck_argv(services[service])
    assert argv, f"{service} has no health check"


@pytest.mark.parametrize(("service", "stage"), [("migrate", "pre"), ("migrate-post", "post")])
def test_each_deploy_stage_is_a_one_shot_run_of_deploy_sh(services, service, stage):
    assert services[service]["restart"] == "no"
    assert services[service]["command"] == ["deploy/deploy.sh", stage]


def test_no_secret_is_on_a_resolved_command_line_or_health_check(services):
    flower_password = SECRETS["FLOWER_BASIC_AUTH"].partition(":")[2]
    for name, service in services.items():
        lines = json.dumps([service.get("command"), service.get("entrypoint"),
                            (service.get("healthcheck") or {}).get("test")])
        for secret, value in [*SECRETS.items(), ("Flower's password", flower_password)]:
            assert value not in lines, f"{name}: {secret} on a command line"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_the_app_services_get_their_secrets_only_through_their_environment(services, service):
    environment = services[service]["environment"]
    assert environment["SECRET_KEY"] == SECRETS["SECRET_KEY"]
    assert f":{SECRETS['APP_DATABASE_PASSWORD']}@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0"


def test_the_declared_order_is_database_migrate_release_then_post_deploy(services):
    assert start_waves(services) == [
        {"postgres", "redis"},
        {"migrate"},
        {"web", "worker", "beat"},
        {"migrate-post", "flower"},
    ]


@pytest.mark.parametrize("service", ["web", "beat"])
def test_the_release_starts_once_migrate_succeeded_on_healthy_backing_services(services, service):
    assert dependencies(services[service]) == {
        "postgres": "healthy", "redis": "healthy", "migrate": "completed"}


def test_the_worker_starts_with_migrate_so_a_gate_of_the_pre_stage_has_a_worker_for_its_job(
        services):
    assert dependencies(services["worker"]) == {
        "postgres": "healthy", "redis": "healthy", "migrate": "started"}


def test_migrate_waits_for_healthy_backing_services(services):
    assert dependencies(services["migrate"]) == {"postgres": "healthy", "redis": "healthy"}


def test_the_post_deploy_stage_waits_for_the_new_web_and_worker_to_be_healthy(services):
    assert dependencies(services["migrate-post"]) == {"web": "healthy", "worker": "healthy"}
