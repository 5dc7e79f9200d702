"""The scale run's slopes: per million alerts at each size, and the billion-alert column from
the largest size; catalog-only DDL steps (the same milliseconds at any size) are left out."""

from bench import slopes


def entry(scale: str, alerts: int, alerts_job_seconds: float, index_ms: int, wal: int) -> dict:
    return {
        "scale": scale, "alerts": alerts, "seconds": 2 * alerts_job_seconds,
        "work_seconds": 2 * alerts_job_seconds, "seed_bytes": 1000 * alerts,
        "database_bytes": 1500 * alerts, "wal_bytes": wal,
        "jobs": [{"job": "alerts_uuid", "rows": alerts, "seconds": alerts_job_seconds}],
        "steps": [{"migration": "investments.0007", "steps": [
            {"step": "ddl create index alert uuid", "ms": index_ms},
            {"step": "set lock_timeout", "ms": 3}]}],
        "relation_bytes": {"investments_alert": 200 * alerts},
    }


def test_each_part_is_shown_per_million_alerts_with_its_slope_and_its_billion_figure():
    medium = entry("medium", 1_000_000, 20.0, 4_000, 2 * 1024**3)
    xlarge = entry("xlarge", 10_000_000, 400.0, 40_000, 20 * 1024**3)
    lines = slopes.table([xlarge, medium])  # any order: sorted by size
    job = next(line for line in lines if line.startswith("| job alerts_uuid"))
    # 20 s per 1M at medium, 40 s per 1M at xlarge: 20x the time for 10x the rows, slope 1.30;
    # a billion is xlarge's 400 s x 100.
    assert job.split(" | ")[1:] == ["20 s", "40 s", "1.30", "11.1 h |"]
    index = next(line for line in lines if line.startswith("| DDL: create index alert uuid |"))
    assert index.split(" | ")[1:] == ["4 s", "4 s", "1.00", "1.1 h |"]
    assert not any("set lock_timeout" in line for line in lines)
    wal = next(line for line in lines if line.startswith("| WAL written"))
    assert wal.endswith("| 2.0 GB | 2.0 GB | 1.00 | 2.0 TB |")


def test_sizing_names_time_disk_wal_and_dead_rows_from_the_largest_size():
    text = "\n".join(slopes.sizing([entry("medium", 1_000_000, 20.0, 4_000, 2 * 1024**3),
                                    entry("xlarge", 10_000_000, 400.0, 40_000, 20 * 1024**3)]))
    assert "from xlarge, scaled \u00d7100" in text
    assert "about 22.2 h with 2 workers" in text  # 800 s of work x 100
    assert "grows by about 465.7 GB" in text  # 500 bytes per alert x 1B
    assert "about 2.0 TB written" in text
    assert "1,000,000,000 dead rows" in text


def test_one_measured_size_gives_no_slopes():
    assert slopes.table([entry("medium", 1_000_000, 20.0, 4_000, 1)]) == []
