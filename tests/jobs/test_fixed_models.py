"""The models after the fixes, as the application uses them (the seed task's own checks)."""

import pytest
from django.db import IntegrityError, transaction

from assets.models import Asset, Country, Currency, Exchange, Sector
from investments.models import Alert, AlertTrigger
from portfolios.models import Benchmark

pytestmark = pytest.mark.django_db


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


@pytest.mark.parametrize("model", [Country, Currency, Sector, Benchmark, Alert])
def test_each_fixed_model_has_soft_delete_managers(model):
    assert {"objects", "all_objects"} <= {m.name for m in model._meta.managers}
    assert model._meta.get_field("is_deleted").db_default is not None


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
