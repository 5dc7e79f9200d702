"""Targets declared in a file, with the environment on top (`migrations_worker.targets`)."""

import pytest

from migrations_worker.exceptions import ExitCode, InvalidTargets
from migrations_worker.targets import Target, database_settings, databases, labels, load, parse

FILE = """
[targets.eu]
url = "postgres://app@pg-eu-1:6432/investments_eu?sslmode=require"
labels = { server = "pg-eu-1", region = "eu" }

[targets.us_big_customer]
url = "postgresql://app@10.0.0.9/bigco"
labels = { region = "us" }

[targets.default]
labels = { region = "us" }
"""
PASSWORD = "from-the-environment"  # pragma: allowlist secret
DEFAULT = {"ENGINE": "django.db.backends.postgresql", "NAME": "investments", "HOST": "127.0.0.1",
           "PORT": "55432", "USER": "postgres", "PASSWORD": "", "CONN_MAX_AGE": 0,
           "OPTIONS": {"application_name": "worker1"}}


def test_without_a_file_the_only_target_is_the_projects_default_database():
    assert load(None, {}) == [Target("default", None, {})]
    assert databases(load(None, {}), DEFAULT) == {"default": DEFAULT}


def test_a_file_declares_targets_with_urls_and_labels_default_first(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text(FILE)
    found = load(path, {})
    assert [t.name for t in found] == ["default", "eu", "us_big_customer"]
    assert found[0].labels == {"region": "us"} and found[0].url is None
    assert found[1].labels == {"server": "pg-eu-1", "region": "eu"}


def test_the_environment_overrides_a_targets_url_so_passwords_stay_out_of_the_file():
    url = "postgres://app:" + PASSWORD + "@pg-eu-2/eu2"
    found = parse(FILE, {"MW_TARGET_EU_URL": url})
    assert [t.url for t in found if t.name == "eu"] == [url]
    assert database_settings(found[1], DEFAULT)["PASSWORD"] == PASSWORD


def test_a_target_becomes_a_django_database_with_the_defaults_options():
    eu = parse(FILE, {})[1]
    entry = database_settings(eu, DEFAULT)
    assert (entry["NAME"], entry["USER"], entry["PASSWORD"], entry["HOST"], entry["PORT"]) == (
        "investments_eu", "app", "", "pg-eu-1", "6432")
    assert entry["OPTIONS"] == {"application_name": "worker1", "sslmode": "require"}
    assert entry["ENGINE"] == DEFAULT["ENGINE"] and entry["CONN_MAX_AGE"] == 0
    assert entry["TEST"] == {"NAME": "test_investments_eu"}


def test_a_targets_server_is_its_label_or_else_its_host_and_port():
    eu, big = parse(FILE, {})[1:]
    assert eu.server(database_settings(eu, DEFAULT)) == "pg-eu-1"
    assert big.server(database_settings(big, DEFAULT)) == "10.0.0.9:5432"


def test_labels_are_read_per_target_for_the_engines_settings(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text(FILE)
    found = load(path, {})
    assert labels(found)["eu"] == {"server": "pg-eu-1", "region": "eu"}
    assert list(databases(found, DEFAULT)) == ["default", "eu", "us_big_customer"]


@pytest.mark.parametrize(("text", "says"), [
    ("[targets.EU]\nurl = 'postgres://x/y'", "lower-case letters"),
    ("[targets.eu]\nurl = 'mysql://x/y'", "postgres://"),
    ("[targets.eu]\nlabels = { region = 'eu' }", "no url (set it in the file or in MW_TARGET_EU_URL)"),
    ("[targets.eu]\nurl = 'postgres://x/y'\npassword = 'p'", "only ['labels', 'url'] may be set"),
    ("[targets.eu]\nurl = 'postgres://x/y'\nlabels = { region = 1 }", "labels are a table"),
    ("[targets.default]\nurl = 'postgres://x/y'", "only its labels may be set here"),
    ("[target.eu]\nurl = 'postgres://x/y'", "unknown top-level key(s) ['target']"),
    ("[targets.eu\nurl = ", "not valid TOML"),
])
def test_a_wrong_targets_file_is_refused_with_what_to_fix(text, says):
    with pytest.raises(InvalidTargets) as caught:
        parse(text, {})
    assert says in str(caught.value)
    assert caught.value.exit_code == ExitCode.INVALID_INPUT


def test_a_missing_targets_file_is_refused_naming_it(tmp_path):
    with pytest.raises(InvalidTargets, match=r"cannot read the targets file .*nowhere\.toml"):
        load(tmp_path / "nowhere.toml", {})
