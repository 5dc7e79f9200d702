"""The decisions `ticker_dedup_undo` makes when it puts a merge back, without a database: what each
archive row asks for, and whether a row still holds what the merge left."""

from decimal import Decimal

from assets.jobs.undo_rules import (
    Archived,
    Position,
    Split,
    plan,
    position_as_merged,
    still_as_merged,
)

SURVIVOR = 11
P1, P2 = "p1", "p2"


def row(n: int, table: str, action: str, by_merge: bool = True, **before) -> Archived:
    return Archived(id=n, table=table, row_id=n * 10, action=action, before=before,
                    by_merge=by_merge)


def holding(n: int, action: str, portfolio: str, asset: int, quantity: str, cost: str,
            deleted: bool = False, by_merge: bool = True) -> Archived:
    return row(n, "portfolios_holding", action, by_merge, portfolio_id=portfolio, asset_id=asset,
               quantity=Decimal(quantity), average_cost=Decimal(cost), is_deleted=deleted)


# -- what each archive row asks for ----------------------------------------------------------------


def test_a_removed_asset_is_restored_a_changed_row_moved_back_a_removed_row_inserted_again():
    asset = row(1, "assets_asset", "removed", id=12)
    alert = row(2, "investments_alert", "changed", asset_id=12)
    price = row(3, "assets_assetpriceshistoric", "removed", asset_id=12)
    steps = plan([asset, alert, price])
    assert (steps.assets, steps.move_back, steps.insert_again) == ([asset], [alert], [price])
    assert (steps.splits, steps.written_since) == ([], [])


def test_a_position_is_the_changed_live_holding_with_the_holdings_of_its_portfolio_summed_into_it():
    keeper = holding(1, "changed", P1, 11, "10", "100")
    summed = holding(2, "removed", P1, 12, "30", "200")
    other_keeper = holding(3, "changed", P2, 12, "7", "3")  # moved alone
    assert plan([keeper, summed, other_keeper]).splits == [Split(keeper, (summed,)),
                                                           Split(other_keeper)]


def test_a_soft_deleted_holding_the_merge_repointed_is_moved_back_and_never_part_of_a_position():
    deleted = holding(1, "changed", P1, 12, "99", "1", deleted=True)
    steps = plan([deleted, holding(2, "changed", P1, 11, "1", "1")])
    assert steps.move_back == [deleted]
    assert [s.keeper.id for s in steps.splits] == [2]


def test_rows_the_redirect_wrote_after_the_merge_are_writes_since_whatever_their_action():
    redirected = holding(1, "redirected", P1, 12, "10", "75", by_merge=False)
    replaced = holding(2, "removed", P1, 11, "40", "175", by_merge=False)  # folded into the write
    steps = plan([redirected, replaced])
    assert steps.written_since == [redirected, replaced]
    assert (steps.splits, steps.insert_again) == ([], [])


# -- what the merge left, and a row changed since ---------------------------------------------------


def test_a_split_knows_the_quantity_and_weighted_cost_the_merge_left_on_its_keeper():
    split = Split(holding(1, "changed", P1, 11, "10", "100"), (holding(2, "removed", P1, 12, "30", "200"),))
    assert split.left_by_merge() == Position(Decimal("40"), Decimal("175"))
    assert Split(holding(1, "changed", P1, 12, "0", "9")).left_by_merge() == Position(
        Decimal("0"), Decimal("9"))


def test_a_position_still_as_the_merge_left_it_is_split_back_and_any_change_is_a_reason_not_to():
    split = Split(holding(1, "changed", P1, 11, "10", "100"), (holding(2, "removed", P1, 12, "30", "200"),))
    merged = {"asset_id": SURVIVOR, "portfolio_id": P1, "quantity": Decimal("40.00000000"),
              "average_cost": Decimal("175.00000000"), "is_deleted": False}
    assert position_as_merged(merged, split, SURVIVOR) == ""
    assert position_as_merged({**merged, "quantity": Decimal("45")}, split, SURVIVOR) == (
        "holds 45 at 175 since the merge, which left 40 at 175")
    assert position_as_merged({**merged, "average_cost": Decimal("170")}, split, SURVIVOR) != ""
    assert position_as_merged({**merged, "asset_id": 20}, split, SURVIVOR) == (
        "names asset 20 since the merge, not the survivor 11")
    assert position_as_merged({**merged, "is_deleted": True}, split, SURVIVOR) == (
        "soft-deleted since the merge")
    assert position_as_merged({**merged, "portfolio_id": P2}, split, SURVIVOR) != ""
    assert position_as_merged(None, split, SURVIVOR) == "deleted since the merge"


def test_a_repointed_row_is_as_the_merge_left_it_while_it_names_the_survivor():
    assert still_as_merged({"asset_id": SURVIVOR, "threshold": 5}, SURVIVOR) == ""  # other edits
    assert still_as_merged({"asset_id": 20}, SURVIVOR) != ""
    assert still_as_merged(None, SURVIVOR) == "deleted since the merge"
