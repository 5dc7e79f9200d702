"""bench.flat's report: the large scale's rows/s against the two runs of the small scale around
it, so that the machine's drift between runs does not pass for the data's size."""

from bench import flat


def run(scale: str, rate: float, started: str = "22:20:36") -> dict:
    return {"scale": scale, "started": started, "rows_per_second": rate}


def test_the_large_run_is_held_against_the_mean_and_the_faster_of_the_small_runs_around_it():
    rounds = [{"before": run("medium", 31_334.0), "large": run("xlarge", 38_217.0),
               "after": run("medium", 40_529.0)},
              {"before": run("medium", 50_000.0), "large": run("xlarge", 40_000.0),
               "after": run("medium", 50_000.0)}]
    mean, fastest = flat.ratios(rounds[0])
    assert round(mean, 3) == round(38_217 / 35_931.5, 3) and round(fastest, 3) == 0.943
    text = flat.report({"small": "medium", "large": "xlarge", "started": "2026-12-06 22:20 UTC",
                        "rounds": rounds, "settings": "fsync off",
                        "command": "python -m bench.flat --small medium --large xlarge --rounds 2"})
    assert "| 1 | 31,334/s (22:20:36) | 38,217/s | 40,529/s | 1.06x | 0.94x |" in text
    assert "| 2 | 50,000/s (22:20:36) | 40,000/s | 50,000/s | 0.80x | 0.80x |" in text
    # The median of 1.06 and 0.80.
    assert "xlarge ÷ the mean of its medium runs: **0.93x** (goal 0.9x)." in text
