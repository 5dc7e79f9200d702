"""bench.footprint's report: each job's WAL and growth, in all and per row of what it had to do."""

from bench import footprint


def test_the_report_gives_each_jobs_wal_and_growth_per_row_to_do():
    entries = [{"job": "alerts_uuid", "rows": 1_000_000, "seconds": 18.8,
                "wal_bytes": 476_000_000, "growth_bytes": 144_000_000,
                "wal_per_row": 476.0, "growth_per_row": 144.0}]
    text = footprint.report("medium", entries, {"full_page_writes": "off"}, "2026-12-06 21:27 UTC",
                            "python -m bench.footprint --scale medium")
    assert "| alerts_uuid | 1,000,000 | 18.8 s | 453.9 MB | 476 B | 137.3 MB | 144 B |" in text
    assert "Server settings: full_page_writes off." in text
    assert text.splitlines()[2].startswith("`python -m bench.footprint --scale medium`: each job alone")
