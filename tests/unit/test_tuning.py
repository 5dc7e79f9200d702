"""How hard a run pushes (`runs/throttle.py`), without a database: the next batch's size, aimed at
the target duration but never more than `max_growth` times bigger or smaller than the last and
always within [min_batch_size, max_batch_size]; and the knobs refused before a run is created when
a worker would choke on them."""

import math

import pytest

from migrations_worker.exceptions import InvalidTuning
from migrations_worker.runs.throttle import Tuning, next_batch_size

# Half a second per batch, twice (or half) the last batch at most, 100 to 50,000 rows.
TUNING = Tuning(batch_size=1_000, min_batch_size=100, max_batch_size=50_000,
                target_batch_seconds=0.5, max_growth=2.0)


def test_a_batch_aims_at_the_target_duration_from_the_seconds_each_key_took():
    assert next_batch_size(1_000, 0.5 / 1_500, TUNING) == 1_500
    assert next_batch_size(1_000, 0.5 / 700, TUNING) == 700


def test_a_fast_batch_grows_the_next_at_most_max_growth_times():
    # A batch that took nothing at all would ask for millions of rows in one transaction.
    assert next_batch_size(1_000, 1e-9, TUNING) == 2_000
    assert next_batch_size(1_000, None, TUNING) == 2_000  # no measure yet: grow by the cap
    sizes = [1_000]
    for _ in range(4):
        sizes.append(next_batch_size(sizes[-1], 1e-9, TUNING))
    assert sizes == [1_000, 2_000, 4_000, 8_000, 16_000]


def test_a_slow_batch_shrinks_the_next_at_most_max_growth_times():
    assert next_batch_size(1_000, 10.0, TUNING) == 500


def test_the_size_never_leaves_min_batch_size_to_max_batch_size():
    assert next_batch_size(40_000, 1e-9, TUNING) == 50_000
    assert next_batch_size(150, 10.0, TUNING) == 100
    assert next_batch_size(100, 10.0, TUNING) == 100


@pytest.mark.parametrize(("options", "says"), [
    ({"batch_sise": 10}, "unknown tuning option(s): batch_sise"),
    ({"batch_size": True}, "batch_size must be a whole number, not True"),
    ({"batch_size": 10.5}, "batch_size must be a whole number, not 10.5"),
    ({"pause_seconds": "1"}, "pause_seconds must be a number, not '1'"),
    ({"pause_seconds": math.nan}, "pause_seconds must be at least 0 and at most 86400.0, got nan"),
    ({"lease_seconds": math.inf}, "lease_seconds must be more than 0 and at most 86400.0, got inf"),
    ({"lease_seconds": 0}, "lease_seconds must be more than 0 and at most 86400.0, got 0"),
    ({"max_growth": 0.5}, "max_growth must be at least 1 and at most 1000, got 0.5"),
    ({"lock_timeout_ms": 0}, "lock_timeout_ms must be at least 1"),
    ({"min_batch_size": 500, "max_batch_size": 400},
     "min_batch_size must be positive and at most max_batch_size"),
])
def test_a_knob_a_worker_would_choke_on_is_refused_naming_it(options, says):
    with pytest.raises(InvalidTuning) as refused:
        Tuning.resolve(options)
    assert str(refused.value).startswith(says)


def test_the_edges_of_each_range_are_accepted():
    tuning = Tuning.resolve({"pause_seconds": 0, "max_growth": 1, "lease_seconds": 0.001,
                             "min_batch_size": 400, "max_batch_size": 400})
    assert (tuning.pause_seconds, tuning.max_growth, tuning.min_batch_size) == (0, 1, 400)
