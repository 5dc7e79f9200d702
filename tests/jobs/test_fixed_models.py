"""The models after the fixes, as the application uses them (the seed task's own checks).

The seven models the fixes made soft-deleting (Country, Sector, Industry, Currency, Benchmark,
NewsArticle, Alert) each hide a deleted row, keep it in its table, and bring it back.
"""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction

from assets.models import Asset, Country, Currency, Exchange, Industry, Sector
from investments.models import Alert, AlertTrigger, NewsArticle
from portfolios.models import Benchmark

pytestmark = pytest.mark.django_db

FIXED_MODELS = (Country, Sector, Industry, Currency, Benchmark, NewsArticle, Alert)


@pytest.fixture
def market():
    country = Country.objects.create(iso_code="US", name="United States")
    currency = Currency.objects.create(code="USD", name="US Dollar")
    exchange = Exchange.objects.create(mic="XNAS", name="Nasdaq", country=country, currency=currency)
    return country, currency, exchange


def test_country_soft_delete_hides_it_keeps_it_and_restores_it(market):
    country, _, exchange = market
    country.delete()
    country.refresh_from_db()
    assert country.is_deleted and country.deleted_at is not None
    assert not Country.objects.filter(pk=country.pk).exists()
    assert Country.all_objects.filter(is_deleted=True, pk=country.pk).exists()
    # Deleting reference data never removes what refers to it.
    assert Exchange.objects.filter(pk=exchange.pk, country_id=country.pk).exists()
    country.restore()
    assert Country.objects.filter(pk=country.pk).exists()


@pytest.mark.parametrize("model", FIXED_MODELS, ids=lambda m: m.__name__)
def test_each_fixed_model_has_soft_delete_managers(model):
    assert {"objects", "all_objects"} <= {m.name for m in model._meta.managers}
    assert model._meta.get_field("is_deleted").db_default is not None


def one_of(model, market, django_user_model):
    """A row of `model` with what it refers to."""
    _, currency, exchange = market
    if model is Country:
        return Country.objects.create(iso_code="DE", name="Germany")
    if model is Currency:
        return Currency.objects.create(code="EUR", name="Euro")
    if model is Sector:
        return Sector.objects.create(name="Technology")
    if model is Industry:
        return Industry.objects.create(sector=Sector.objects.create(name="Energy"), name="Oil")
    if model is NewsArticle:
        return NewsArticle.objects.create(title="Results", url="https://example.com/r",
                                          source="wire", published_at=datetime(2026, 1, 2, tzinfo=UTC))
    asset = Asset.objects.create(ticker="IBM", name="IBM", exchange=exchange, currency=currency)
    if model is Benchmark:
        return Benchmark.objects.create(name="Tech index", asset=asset)
    user = django_user_model.objects.create_user("bob")
    return Alert.objects.create(user=user, asset=asset, condition="below", threshold=90)


def rows_in_table(row) -> list[tuple]:
    """The row as its table holds it, whatever the managers show."""
    table, pk = row._meta.db_table, row._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT is_deleted, deleted_at IS NOT NULL FROM {table} WHERE {pk} = %s",
                       [row.pk])
        return cursor.fetchall()


@pytest.mark.parametrize("model", FIXED_MODELS, ids=lambda m: m.__name__)
def test_each_fixed_model_soft_deletes_keeps_the_row_and_restores_it(model, market,
                                                                     django_user_model):
    row = one_of(model, market, django_user_model)
    row.delete()
    assert rows_in_table(row) == [(True, True)]  # still in its table, marked
    assert not model.objects.filter(pk=row.pk).exists()
    assert model.all_objects.deleted().filter(pk=row.pk).exists()
    row.restore()
    assert rows_in_table(row) == [(False, False)]
    assert model.objects.filter(pk=row.pk).exists()
    # A queryset's delete() marks too.
    assert model.objects.filter(pk=row.pk).delete()[0] == 1
    assert rows_in_table(row) == [(True, True)] and not model.objects.filter(pk=row.pk).exists()


def test_a_duplicate_ticker_on_one_exchange_raises_integrity_error(market):
    _, currency, exchange = market
    Asset.objects.create(ticker="AAPL", name="Apple", exchange=exchange, currency=currency)
    with pytest.raises(IntegrityError), transaction.atomic():
        Asset.objects.create(ticker="AAPL", name="Apple again", exchange=exchange, currency=currency)
    Asset.all_objects.filter(ticker="AAPL").delete()  # soft-deleted rows still hold the pair
    with pytest.raises(IntegrityError), transaction.atomic():
        Asset.objects.create(ticker="AAPL", name="Apple again", exchange=exchange, currency=currency)


def test_alert_is_keyed_by_uuid_and_keeps_its_legacy_integer(market, django_user_model):
    _, currency, exchange = market
    asset = Asset.objects.create(ticker="MSFT", name="Microsoft", exchange=exchange, currency=currency)
    user = django_user_model.objects.create_user("alice")
    alert = Alert.objects.create(user=user, asset=asset, condition="above", threshold=100)
    trigger = AlertTrigger.objects.create(alert=alert, triggered_at="2026-01-01T00:00Z", price=101)
    alert.refresh_from_db()
    trigger.refresh_from_db()
    assert len(str(alert.pk)) == 36 and isinstance(alert.legacy_id, int)
    assert trigger.alert_id == alert.pk and trigger.legacy_alert_id == alert.legacy_id
