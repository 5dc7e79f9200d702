"""bench.prepared's report: each round's per-batch figures and their medians, without and with
prepared statements (the raw records are those of bench.profile_engine's inline runs)."""

from bench import prepared


def engine(number: int, kind: str, batches: int, claim: float, bookkeeping: float,
           job: float) -> dict:
    """A run of `batches` batches taking `claim`, `bookkeeping` and `job` seconds in all."""
    return {"round": number, "kind": kind, "seconds": claim + bookkeeping + job + 1,
            "batches": batches, "statements": {},
            "steps": {"claim a batch": claim, "batch: bookkeeping + commit": bookkeeping,
                      "batch: the job's statements": job}}


def test_the_report_gives_each_rounds_milliseconds_per_batch_and_the_medians_ratio():
    records = []
    for number, (slow_claim, fast_claim) in enumerate([(3.0, 1.5), (3.2, 1.7), (2.8, 1.6)]):
        records += [{"round": number, "kind": "single", "seconds": 20.0 + number},
                    engine(number, "unprepared", 1_000, slow_claim, 2.5, 80.0),
                    engine(number, "prepared", 1_000, fast_claim, 1.9, 80.0)]
    text = prepared.report({"scale": "medium", "rounds": 3, "records": records,
                            "alerts": 1_000_000, "measured": "then", "settings_words": "defaults",
                            "command": "python -m bench.prepared"})
    assert "| 2 | 21.0 s | 86.7 s, 1000, 3.20 ms / 2.50 ms / 80.00 ms | " \
           "84.6 s, 1000, 1.70 ms / 1.90 ms / 80.00 ms |" in text
    # Medians: claim 3.0 -> 1.6 ms, bookkeeping 2.5 -> 1.9 ms; own time 5.5 -> 3.5 ms.
    assert "the claim 3.00 -> 1.60 ms, the bookkeeping and commit 2.50 -> 1.90 ms" in text
    assert "the engine's own time per batch 5.50 -> 3.50 ms (0.64x)" in text
