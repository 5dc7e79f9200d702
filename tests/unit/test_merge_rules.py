"""The decisions `ticker_dedup` makes when it merges a duplicate (ticker, exchange) group, without
a database: which asset survives, which colliding row stays, what a merged position holds."""

from decimal import Decimal

import pytest

from assets.jobs.merge_rules import (
    Claim,
    Member,
    Position,
    choose_keeper,
    choose_survivor,
    merged_position,
)

SURVIVOR = 20


# -- the survivor -------------------------------------------------------------------------------


def test_the_survivor_is_the_lowest_id_member_that_is_not_soft_deleted():
    members = [Member(10, is_deleted=True), Member(20, False), Member(30, False)]
    assert choose_survivor(members) == 20


def test_a_lone_live_member_survives_over_lower_ids_that_are_soft_deleted():
    members = [Member(10, True), Member(20, True), Member(30, False)]
    assert choose_survivor(members) == 30


def test_when_every_member_is_soft_deleted_the_lowest_id_survives():
    members = [Member(30, True), Member(10, True), Member(20, True)]
    assert choose_survivor(members) == 10


def test_the_survivor_does_not_depend_on_the_order_the_members_come_in():
    members = [Member(40, False), Member(10, True), Member(30, False), Member(20, False)]
    assert choose_survivor(members) == choose_survivor(sorted(members, key=lambda m: m.id)) == 20


# -- which colliding row stays ----------------------------------------------------------------


def test_the_survivors_own_row_is_kept_over_a_lower_id_row_of_another_member():
    rows = [Claim(1, asset_id=10), Claim(2, asset_id=SURVIVOR), Claim(3, asset_id=30)]
    assert choose_keeper(rows, SURVIVOR).id == 2


def test_without_a_row_of_the_survivor_the_lowest_id_row_is_kept():
    rows = [Claim(7, asset_id=30), Claim(5, asset_id=10), Claim(6, asset_id=30)]
    assert choose_keeper(rows, SURVIVOR).id == 5


def test_a_live_row_is_kept_over_a_soft_deleted_row_of_the_survivor():
    rows = [Claim(1, SURVIVOR, is_deleted=True), Claim(2, 10, is_deleted=False)]
    assert choose_keeper(rows, SURVIVOR).id == 2


def test_among_live_rows_the_survivors_is_kept_whatever_the_soft_deleted_rows_are():
    rows = [Claim(1, 10, True), Claim(2, SURVIVOR, True), Claim(3, 10, False), Claim(4, SURVIVOR, False)]
    assert choose_keeper(rows, SURVIVOR).id == 4


def test_among_soft_deleted_rows_only_the_survivors_is_kept():
    rows = [Claim(1, 10, True), Claim(2, SURVIVOR, True)]
    assert choose_keeper(rows, SURVIVOR).id == 2


def test_the_keeper_is_one_of_the_rows_given_not_a_copy():
    rows = [Claim(3, 10), Claim(4, 30)]
    assert choose_keeper(rows, SURVIVOR) is rows[0]  # the job tells the others apart by identity


# -- a merged holding ----------------------------------------------------------------------------


def d(value: str) -> Decimal:
    return Decimal(value)


def test_merged_quantities_are_summed_and_the_cost_is_weighted_by_quantity():
    merged = merged_position([Position(d("10"), d("100")), Position(d("30"), d("200"))], d("100"))
    assert merged == Position(d("40"), d("175.00000000"))


def test_the_merged_position_keeps_the_total_cost_of_what_was_held():
    positions = [Position(d("2.5"), d("40")), Position(d("7.5"), d("80")), Position(d("10"), d("10"))]
    merged = merged_position(positions, d("40"))
    assert merged.quantity * merged.average_cost == sum(p.quantity * p.average_cost for p in positions)


def test_the_merged_cost_is_rounded_to_the_columns_eight_places():
    merged = merged_position([Position(d("1"), d("1")), Position(d("2"), d("0.5"))], d("1"))
    assert merged.average_cost == d("0.66666667")  # 2/3, rounded, not cut
    assert merged.average_cost.as_tuple().exponent == -8


@pytest.mark.parametrize(("ties_at", "rounded"), [("0.00000001", "0E-8"), ("0.00000003", "2E-8")])
def test_a_cost_exactly_half_way_rounds_to_the_even_last_place(ties_at, rounded):
    merged = merged_position([Position(d("1"), d(ties_at)), Position(d("1"), d("0"))], d("0"))
    assert merged.average_cost == d(rounded)


def test_a_position_that_sums_to_zero_keeps_the_keepers_cost():
    merged = merged_position([Position(d("0"), d("12.5")), Position(d("0"), d("99"))], d("12.5"))
    assert merged == Position(d("0"), d("12.5"))


def test_a_long_and_a_short_that_cancel_out_keep_the_keepers_cost_instead_of_dividing_by_zero():
    merged = merged_position([Position(d("5"), d("10")), Position(d("-5"), d("20"))], d("20"))
    assert merged == Position(d("0"), d("20"))


def test_a_single_position_moves_over_unchanged():
    assert merged_position([Position(d("7"), d("12.5"))], d("12.5")) == Position(d("7"), d("12.5"))
