"""The fleet demo's and the fleet bench's groundwork: seeded databases over both servers, declared
in a targets file the engine loads, the bench's fleet report rendered from a raw result, and
which of a release's writes a deploy must keep."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from django.db import connection

from assets.models import AssetLegacyText
from bench.fleet_report import render
from bench.load import Sample, windows_summary
from migrations_worker import targets as mw_targets
from seed import fleet
from seed.releases import verify_writes
from seed.schema import legacy_state_problems
from tests.conftest import ROOT
from tests.scratch import server_url


@pytest.fixture
def two_servers(db):
    servers = [fleet.parse_server(f"pg-1={server_url('postgres')}"),
               fleet.parse_server(f"pg-2={server_url('postgres', alias='far')}")]
    prefix = f"{connection.settings_dict['NAME'][:24]}_fl"
    made = fleet.members(prefix, 2, servers, {"fleet": "demo"})
    yield prefix, servers, made
    fleet.drop_all(made)
    for server in servers:
        fleet.drop(server, f"{prefix}_template")


def test_seeding_a_fleet_of_two_puts_one_seeded_legacy_database_on_each_server(two_servers, tmp_path):
    prefix, servers, made = two_servers
    fleet.create(made, "small", template_prefix=prefix, log=lambda _: None)
    path = fleet.write_targets(tmp_path / "targets.toml", made, {"server": "pg-1"})

    declared = {t.name: t for t in mw_targets.load(path, {})}
    assert set(declared) == {"default", f"{prefix}_01", f"{prefix}_02"}
    assert declared["default"].labels == {"server": "pg-1"}
    for member, server in zip(made, servers, strict=True):
        target = declared[member.name]
        assert target.url == server.database_url(member.name)
        assert target.labels == {"server": server.label, "fleet": "demo"}
        with psycopg.connect(target.url) as conn, conn.cursor() as cursor:
            assert legacy_state_problems(cursor) == ([], [])
            cursor.execute("SELECT count(*) FROM investments_alert")
            assert cursor.fetchone()[0] > 1000
            cursor.execute("SELECT count(*) FROM migrations_worker_jobrun")
            assert cursor.fetchone()[0] == 0


def test_a_second_fleet_copies_the_seeded_templates_without_seeding_again(two_servers):
    prefix, servers, made = two_servers
    fleet.create(made, "small", template_prefix=prefix, log=lambda _: None)
    seen: list[str] = []
    fleet.create(made, "small", template_prefix=prefix, log=seen.append)
    assert not any("seeding" in line for line in seen)
    assert all(fleet.marker_of(s, f"{prefix}_template") == fleet.marker("small") for s in servers)


def test_a_fleet_prefix_that_cannot_name_a_target_is_refused():
    server = fleet.Server("pg-1", "postgres://postgres@127.0.0.1:55432")
    with pytest.raises(fleet.FleetError, match="prefix"):
        fleet.members("Demo-fleet", 2, [server])


def test_verify_writes_excuses_only_a_text_the_release_itself_replaced_and_lists_other_missing_ones(db):
    AssetLegacyText.objects.create(asset_id=7, field="sector", value="Utilities", outcome="matched")
    texts = [[7, "sector", "Energy"], [7, "sector", "Utilities"], [8, "industry", "Banks"],
             [7, "sector", "Utilities"], [9, "sector", "Energy"], [9, "sector", "Energy"]]
    with connection.cursor() as cursor:
        kept = verify_writes(cursor, {"texts": texts, "rows": [], "links": []})
    # Energy on 7 was replaced by the release's own Utilities; Energy on 9 never was.
    assert (kept["texts_archived"], kept["texts_superseded"]) == (2, 1)
    assert kept["missing"] == ["text industry='Banks' of asset 8 not archived",
                               "text sector='Energy' of asset 9 not archived",
                               "text sector='Energy' of asset 9 not archived"]


def test_the_bench_fleet_case_answers_its_help():
    done = subprocess.run([sys.executable, "-m", "bench.fleet", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "--databases" in done.stdout and "--report" in done.stdout


def load(own_p99: float, whole_p99: float, errors: int = 0) -> dict:
    def summary(p99: float, seconds: float) -> dict:
        return {"statements": 400, "errors": errors, "p50_ms": 2.0, "p99_ms": p99,
                "max_ms": p99 * 2, "per_second": 20.0, "seconds": seconds}
    return {"server": "pg-1", "own": summary(own_p99, 20.0), "whole": summary(whole_p99, 100.0),
            "first_errors": []}


def test_the_bench_fleet_report_judges_each_database_over_its_own_deploy_windows():
    raw = {"when": "2026-12-06 10:00", "machine": "x86_64, 2 CPUs", "scale": "small",
           "databases": 3, "workers": 2, "rate": 50.0,
           "servers": {"pg-1": "postgres://h:1", "pg-2": "postgres://h:2"},
           "contenders": {
               "loop": {"seconds": 100.0, "stages": {"pre": 80.0, "post": 20.0},
                        "databases": {"bench_fleet_loop_01": load(10.0, 4.0),
                                      "bench_fleet_loop_02": load(10.0, 4.0),
                                      "bench_fleet_loop_03": load(10.0, 10.0)}},
               "rollout": {"seconds": 50.0, "stages": {"pre": 40.0, "post": 10.0},
                           "databases": {"bench_fleet_rollout_01": load(10.5, 10.5),
                                         "bench_fleet_rollout_02": load(10.0, 10.0, errors=1),
                                         "bench_fleet_rollout_03": load(12.0, 8.0)}}}}
    text = render(raw)
    assert "| 0.50x | met |" in text
    # _01: worse over the whole run only (its loop idled); _02: an error; _03: its own p99.
    assert "2 of 3 worse | MISSED" in text
    assert "it would be 2 of 3 worse" in text  # _01 and _02, not _03
    assert "| no load error, either contender, whole run | 1 | MISSED |" in text
    assert "1 errors against 0" in text and "p99 12.0 ms against 10.0 ms" in text


def test_the_bench_fleet_load_over_several_windows_counts_only_what_was_sent_inside_them():
    samples = [Sample(at, "op", seconds, ok) for at, seconds, ok in
               [(1.0, 0.001, True), (2.5, 0.5, True), (5.0, 0.002, False), (9.0, 0.9, True)]]
    found = windows_summary(samples, [(0.0, 2.0), (4.0, 6.0)])
    assert (found["statements"], found["errors"], found["seconds"]) == (2, 1, 4.0)
    assert found["max_ms"] == 2.0
