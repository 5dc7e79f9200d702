"""SoftDeleteModel semantics, on the models that have it from the start: Asset, Portfolio,
Holding, Watchlist. Rows are checked in the table itself (raw SQL) where "kept" or "removed" is
the point."""

from datetime import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import ProtectedError
from django.utils import timezone

from assets.models import Asset, Country, Currency, Exchange
from investments.models import Watchlist
from portfolios.models import Holding, Portfolio

pytestmark = pytest.mark.django_db


def rows_in_table(model, **where) -> int:
    table = model._meta.db_table
    clauses = " AND ".join(f"{column} = %s" for column in where) or "TRUE"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} WHERE {clauses}", list(where.values()))
        return cursor.fetchone()[0]


@pytest.fixture
def market():
    country = Country.objects.create(iso_code="US", name="United States")
    usd = Currency.objects.create(code="USD", name="US Dollar")
    exchange = Exchange.objects.create(mic="XNAS", name="Nasdaq", country=country, currency=usd)
    return exchange, usd


def make_asset(market, ticker: str) -> Asset:
    exchange, usd = market
    return Asset.objects.create(ticker=ticker, name=ticker, exchange=exchange, currency=usd)


@pytest.fixture
def user():
    return get_user_model().objects.create_user(username="investor", password="x")


@pytest.fixture
def portfolio(user, market):
    return Portfolio.objects.create(owner=user, name="Main", base_currency=market[1])


def make_holding(portfolio, asset, quantity="10") -> Holding:
    return Holding.objects.create(
        portfolio=portfolio, asset=asset, quantity=Decimal(quantity), average_cost=Decimal("100")
    )


def assert_recent(moment: datetime | None, since: datetime) -> None:
    assert moment is not None
    assert since <= moment <= timezone.now()


# --- instance delete ----------------------------------------------------------------------------


def test_instance_delete_marks_the_row_and_keeps_it(market):
    asset = make_asset(market, "AAPL")
    before = timezone.now()

    result = asset.delete()

    assert result == (1, {"assets.Asset": 1})
    assert rows_in_table(Asset, id=asset.pk) == 1
    stored = Asset.all_objects.get(pk=asset.pk)
    assert stored.is_deleted is True
    assert_recent(stored.deleted_at, before)


def test_objects_hides_soft_deleted_rows(market):
    kept, deleted = make_asset(market, "AAPL"), make_asset(market, "MSFT")
    deleted.delete()

    assert list(Asset.objects.all()) == [kept]
    assert not Asset.objects.filter(pk=deleted.pk).exists()
    with pytest.raises(Asset.DoesNotExist):
        Asset.objects.get(pk=deleted.pk)


def test_all_objects_shows_soft_deleted_rows(market):
    kept, deleted = make_asset(market, "AAPL"), make_asset(market, "MSFT")
    deleted.delete()

    assert set(Asset.all_objects.all()) == {kept, deleted}
    assert list(Asset.all_objects.deleted()) == [deleted]
    assert list(Asset.all_objects.alive()) == [kept]


def test_objects_is_the_default_manager_so_reverse_relations_hide_deleted_rows(
    portfolio, market, user
):
    kept = make_holding(portfolio, make_asset(market, "AAPL"))
    make_holding(portfolio, make_asset(market, "MSFT")).delete()
    watched = Watchlist.objects.create(user=user, asset=kept.asset)
    Watchlist.objects.create(user=user, asset=kept.asset, notes="old").delete()

    assert list(portfolio.holdings.all()) == [kept]
    assert list(user.watchlist.all()) == [watched]


# --- queryset delete ----------------------------------------------------------------------------


def test_queryset_delete_soft_deletes_in_bulk_and_returns_the_count(market):
    assets = [make_asset(market, ticker) for ticker in ("AAPL", "MSFT", "GOOG")]
    before = timezone.now()

    result = Asset.objects.filter(ticker__in=["AAPL", "MSFT"]).delete()

    assert result == (2, {"assets.Asset": 2})
    assert rows_in_table(Asset) == 3
    assert list(Asset.objects.all()) == [assets[2]]
    for asset in Asset.all_objects.filter(ticker__in=["AAPL", "MSFT"]):
        assert asset.is_deleted is True
        assert_recent(asset.deleted_at, before)


def test_queryset_delete_through_objects_does_not_count_rows_already_deleted(market):
    make_asset(market, "AAPL").delete()
    make_asset(market, "MSFT")

    assert Asset.objects.all().delete() == (1, {"assets.Asset": 1})
    assert rows_in_table(Asset, is_deleted=True) == 2


def test_queryset_delete_soft_deletes_watchlist_entries(user, market):
    asset = make_asset(market, "AAPL")
    Watchlist.objects.create(user=user, asset=asset)
    Watchlist.objects.create(user=user, asset=asset, notes="again")

    assert user.watchlist.all().delete() == (2, {"investments.Watchlist": 2})
    assert rows_in_table(Watchlist, is_deleted=True) == 2
    assert Watchlist.objects.count() == 0


# --- hard delete --------------------------------------------------------------------------------


def test_instance_hard_delete_removes_the_row(market):
    asset = make_asset(market, "AAPL")

    asset.hard_delete()

    assert rows_in_table(Asset, id=asset.pk) == 0
    assert not Asset.all_objects.filter(pk=asset.pk).exists()


def test_hard_delete_removes_a_row_that_was_already_soft_deleted(market):
    asset = make_asset(market, "AAPL")
    asset.delete()

    Asset.all_objects.get(pk=asset.pk).hard_delete()

    assert rows_in_table(Asset, id=asset.pk) == 0


def test_queryset_hard_delete_removes_only_the_selected_rows(market):
    for ticker in ("AAPL", "MSFT", "GOOG"):
        make_asset(market, ticker)

    deleted, per_model = Asset.all_objects.filter(ticker__in=["AAPL", "MSFT"]).hard_delete()

    assert deleted == 2
    assert per_model == {"assets.Asset": 2}
    assert rows_in_table(Asset) == 1


def test_hard_delete_of_an_asset_that_holdings_refer_to_is_refused(portfolio, market):
    asset = make_asset(market, "AAPL")
    make_holding(portfolio, asset)

    with pytest.raises(ProtectedError):
        asset.hard_delete()
    assert rows_in_table(Asset, id=asset.pk) == 1


def test_hard_delete_of_a_portfolio_cascades_to_its_holdings_soft_deleted_ones_too(
    portfolio, market
):
    make_holding(portfolio, make_asset(market, "AAPL"))
    make_holding(portfolio, make_asset(market, "MSFT")).delete()

    portfolio.hard_delete()

    assert rows_in_table(Portfolio) == 0
    assert rows_in_table(Holding) == 0


# --- restore ------------------------------------------------------------------------------------


def test_instance_restore_brings_the_row_back(market):
    asset = make_asset(market, "AAPL")
    asset.delete()

    Asset.all_objects.get(pk=asset.pk).restore()

    restored = Asset.objects.get(pk=asset.pk)
    assert restored.is_deleted is False
    assert restored.deleted_at is None


def test_queryset_restore_brings_rows_back_and_returns_the_count(market):
    for ticker in ("AAPL", "MSFT", "GOOG"):
        make_asset(market, ticker)
    Asset.objects.all().delete()

    restored = Asset.all_objects.filter(ticker__in=["AAPL", "MSFT"]).restore()

    assert restored == 2
    assert sorted(Asset.objects.values_list("ticker", flat=True)) == ["AAPL", "MSFT"]
    assert Asset.all_objects.get(ticker="GOOG").is_deleted is True
    assert rows_in_table(Asset, is_deleted=False) == 2
    assert Asset.all_objects.filter(deleted_at__isnull=False).count() == 1


def test_restore_of_a_portfolio_shows_it_with_its_holdings_again(portfolio, market):
    holding = make_holding(portfolio, make_asset(market, "AAPL"))
    portfolio.delete()
    assert not Portfolio.objects.filter(pk=portfolio.pk).exists()

    portfolio.restore()

    assert Portfolio.objects.get(pk=portfolio.pk).holdings.get() == holding


# --- what soft delete leaves alone --------------------------------------------------------------


def test_soft_deleting_an_asset_leaves_the_holdings_that_refer_to_it_intact(portfolio, market):
    asset = make_asset(market, "AAPL")
    holding = make_holding(portfolio, asset, quantity="12.5")

    asset.delete()

    stored = Holding.objects.get(pk=holding.pk)
    assert stored.asset_id == asset.pk
    assert stored.quantity == Decimal("12.5")
    assert stored.is_deleted is False
    # The relation still resolves, to the (deleted) asset.
    assert stored.asset == asset
    assert stored.asset.is_deleted is True
    assert rows_in_table(Holding, asset_id=asset.pk) == 1


def test_bulk_soft_delete_of_assets_leaves_holdings_and_watchlists_intact(
    portfolio, market, user
):
    asset = make_asset(market, "AAPL")
    make_holding(portfolio, asset)
    Watchlist.objects.create(user=user, asset=asset)

    Asset.objects.filter(pk=asset.pk).delete()

    assert Holding.objects.filter(asset_id=asset.pk).count() == 1
    assert Watchlist.objects.filter(asset_id=asset.pk).count() == 1


def test_soft_deleting_a_portfolio_does_not_cascade_to_its_holdings(portfolio, market):
    holding = make_holding(portfolio, make_asset(market, "AAPL"))

    portfolio.delete()

    assert rows_in_table(Portfolio, is_deleted=True) == 1
    assert Holding.objects.get(pk=holding.pk).is_deleted is False


def test_insert_that_does_not_name_the_soft_delete_columns_makes_a_live_row(market):
    # Code from before soft delete existed inserts without is_deleted: db_default covers it.
    exchange, usd = market
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO assets_asset (created_at, updated_at, ticker, name, exchange_id,"
            " currency_id) VALUES (now(), now(), 'OLD', 'Old code', %s, %s) RETURNING id",
            [exchange.pk, usd.pk],
        )
        asset_id = cursor.fetchone()[0]

    asset = Asset.objects.get(pk=asset_id)
    assert asset.is_deleted is False
    assert asset.deleted_at is None
