"""The admin login's brute-force limit (django-axes, config/settings/base.py): five failed logins of
one username from one address lock that pair out, even with the right password, until the
cool-off ends or an operator resets it; behind reverse proxies the address is the one the
outermost trusted proxy saw."""

import secrets

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import RequestFactory

from config.client_ip import client_ip
from migrations_worker.admin import ensure_operator

pytestmark = pytest.mark.django_db(transaction=True)
LOGIN = "/admin/login/?next=/admin/"
PASSWORD = secrets.token_urlsafe(16)


@pytest.fixture
def operator() -> User:
    return ensure_operator("operator", PASSWORD)


def log_in(client, password: str, address: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": "operator", "password": password},
                       REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_the_sixth_attempt_after_five_wrong_passwords_is_refused_even_with_the_right_one(
        client, operator):
    for attempt in range(1, 5):
        assert log_in(client, f"wrong-{attempt}").status_code == 200  # the form, with its error
    locked = log_in(client, "wrong-5")
    assert locked.status_code == 429
    assert "Account locked: too many failed logins. Try again in 15 minutes" in locked.content.decode()

    sixth = log_in(client, PASSWORD)
    assert sixth.status_code == 429
    assert not logged_in(client)


def test_the_lockout_holds_one_username_from_one_address_only(client, operator):
    for attempt in range(5):
        log_in(client, f"wrong-{attempt}")
    assert log_in(client, PASSWORD, address="198.51.100.20").status_code == 302
    assert logged_in(client)


def test_an_operator_resets_a_lockout_and_the_right_password_works_again(client, operator):
    for attempt in range(5):
        log_in(client, f"wrong-{attempt}")
    assert log_in(client, PASSWORD).status_code == 429

    call_command("axes_reset_username", "operator")
    assert log_in(client, PASSWORD).status_code == 302
    assert logged_in(client)


def test_axes_reset_unlocks_everyone(client, operator):
    for attempt in range(5):
        log_in(client, f"wrong-{attempt}")
    call_command("axes_reset")
    assert log_in(client, PASSWORD).status_code == 302


def test_a_successful_login_starts_the_count_again(client, operator):
    for attempt in range(4):
        log_in(client, f"wrong-{attempt}")
    assert log_in(client, PASSWORD).status_code == 302
    client.logout()
    for attempt in range(4):
        assert log_in(client, f"again-wrong-{attempt}").status_code == 200
    assert log_in(client, PASSWORD).status_code == 302


def forwarded(header: str | None, remote: str = "10.0.0.2"):
    extra = {"HTTP_X_FORWARDED_FOR": header} if header is not None else {}
    return RequestFactory().post(LOGIN, REMOTE_ADDR=remote, **extra)


@pytest.mark.django_db(transaction=False)
def test_without_trusted_proxies_the_address_is_remote_addr_and_a_forged_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = 0
    assert client_ip(forwarded("1.2.3.4")) == "10.0.0.2"


@pytest.mark.django_db(transaction=False)
def test_behind_one_proxy_the_address_is_the_one_it_appended_not_what_the_client_sent(settings):
    settings.TRUSTED_PROXIES = 1
    assert client_ip(forwarded("203.0.113.7")) == "203.0.113.7"
    assert client_ip(forwarded("1.2.3.4, 203.0.113.7")) == "203.0.113.7"  # the client forged 1.2.3.4
    settings.TRUSTED_PROXIES = 2  # a load balancer, then nginx
    assert client_ip(forwarded("1.2.3.4, 203.0.113.7, 10.0.0.9")) == "203.0.113.7"


@pytest.mark.django_db(transaction=False)
def test_a_request_that_did_not_pass_the_proxies_counts_by_remote_addr(settings):
    settings.TRUSTED_PROXIES = 1
    assert client_ip(forwarded(None)) == "10.0.0.2"
    assert client_ip(forwarded(" , ")) == "10.0.0.2"
