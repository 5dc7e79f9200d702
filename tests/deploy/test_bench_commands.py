"""The bench's staged deploy drives the project through manage.py commands. A command renamed or
re-argued under it must fail here, in CI, and not minutes into a by-hand scale run: the bench
once still called `release_traffic` after the demo had replaced it with `demo_load`."""

from __future__ import annotations

import pytest

from bench.deploy import release_argv, stage_argv
from tests.deploy.test_compose import manage_py_problems


@pytest.mark.parametrize("release", ["previous", "new"])
def test_the_bench_starts_each_release_with_a_command_that_exists(tmp_path, release):
    argv = release_argv(release, tmp_path / "release.json", tmp_path / "stop", 0.05)
    assert argv[1] == "manage.py"
    assert manage_py_problems(argv[2:]) == []


@pytest.mark.parametrize("stage", ["pre", "post"])
def test_the_bench_runs_each_deploy_stage_with_arguments_migrate_online_takes(stage):
    argv = stage_argv(stage)
    assert argv[1] == "manage.py"
    assert manage_py_problems(argv[2:]) == []
