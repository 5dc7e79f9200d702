"""`manage.py seed_demo`: fill a legacy database with deterministic demo data, fast.

    manage.py seed_demo                          # small, seed 42
    manage.py seed_demo --size medium --reset    # ~1M alerts, 100k assets, 2M prices
    manage.py seed_demo --size small --alerts 50000 --seed 7
    manage.py seed_demo --summary-only --json    # the figures of what is there now

Refuses (and changes nothing) when the database is not migrated, is past the legacy state, or
already has data and `--reset` was not given.
"""

from __future__ import annotations

import argparse
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from seed.dataset import (
    COUNT_FIELDS,
    DEFAULT_SEED,
    SIZES,
    SchemaError,
    SeedError,
    params_for,
    seed_database,
    summarize,
)


def non_negative_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not 0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"must be between 0 and 0.5, got {value}")
    return value


class Command(BaseCommand):
    help = (
        "Fill a database in its legacy state with deterministic demo data containing every hard "
        "case the schema fixes meet. One transaction; refuses non-legacy or non-empty databases."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--seed", type=non_negative_int, default=DEFAULT_SEED,
            help=f"same seed, same rows (default {DEFAULT_SEED})",
        )  # fmt: skip
        parser.add_argument(
            "--size", choices=list(SIZES), default="small",
            help="preset row counts (default small); the options below override single counts",
        )  # fmt: skip
        sizes = parser.add_argument_group("row counts (override the preset)")
        for name in COUNT_FIELDS:
            presets = ", ".join(f"{size} {SIZES[size][name]:,}" for size in SIZES)
            sizes.add_argument(
                f"--{name.replace('_', '-')}", dest=name, type=non_negative_int, metavar="N",
                help=f"presets: {presets}",
            )  # fmt: skip
        sizes.add_argument(
            "--dup-fraction", type=fraction, metavar="F",
            help="share of assets in duplicate (ticker, exchange) groups (default 0.02)",
        )  # fmt: skip
        parser.add_argument(
            "--reset", action="store_true",
            help="empty the domain tables and remove the demo users first (same transaction)",
        )  # fmt: skip
        parser.add_argument(
            "--summary-only", action="store_true",
            help="seed nothing; print the figures of the data already there",
        )  # fmt: skip
        parser.add_argument(
            "--json", action="store_true", help="print the summary as JSON (for scripts)"
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS,
            help=f"database alias to seed (default {DEFAULT_DB_ALIAS!r})",
        )  # fmt: skip

    def handle(self, *args, **options) -> None:
        verbosity = options["verbosity"]
        as_json = options["json"]
        database = options["database"]
        try:
            if options["summary_only"]:
                summary = summarize(using=database)
            else:
                params = params_for(
                    options["size"],
                    seed=options["seed"],
                    dup_fraction=options["dup_fraction"],
                    **{name: options[name] for name in COUNT_FIELDS},
                )

                def progress(label: str, seconds: float) -> None:
                    if verbosity >= 2 and not as_json:
                        self.stdout.write(f"  {label:<32} {seconds:8.2f} s")

                if verbosity >= 1 and not as_json:
                    reset = " after --reset" if options["reset"] else ""
                    self.stdout.write(
                        f"Seeding {options['size']} demo data, seed {params.seed}{reset}..."
                    )
                summary = seed_database(
                    params, reset=options["reset"], using=database, progress=progress
                )
        except (SchemaError, SeedError) as error:
            raise CommandError(str(error)) from error

        if as_json:
            self.stdout.write(json.dumps(summary, indent=2, sort_keys=True, default=str))
        elif verbosity >= 1:
            self.stdout.write(format_summary(summary))
        self.summary = summary  # for callers that pass a Command instance to call_command


def format_summary(summary: dict) -> str:
    counts, cases = summary["counts"], summary["hard_cases"]
    lines = []
    if "seconds" in summary:
        lines.append(f"Seeded in {summary['seconds']:.1f} s (seed {summary['params']['seed']}).")
    lines.append("Rows:")
    lines += [f"  {name:<16} {value:>12,}" for name, value in counts.items()]
    groups = ", ".join(f"{cases[f'dup_groups_size_{n}']} of {n}" for n in range(2, 6))
    lines += [
        "Hard cases:",
        f"  duplicate (ticker, exchange) groups  {cases['dup_groups']:,} ({groups}); "
        f"{cases['dup_assets']:,} assets = {cases['dup_assets_pct']}%, "
        f"{cases['dup_assets_soft_deleted']:,} soft-deleted, "
        f"{cases['dup_groups_lowest_id_deleted']} groups with the oldest deleted, "
        f"{cases['dup_groups_all_deleted']} all deleted",
        f"  same ticker on several exchanges     {cases['tickers_on_several_exchanges']:,}",
        f"  rows on duplicates                   holdings {cases['holdings_on_dup_assets']:,}, "
        f"watchlist {cases['watchlist_on_dup_assets']:,}, "
        f"prices {cases['prices_on_dup_assets']:,}, alerts {cases['alerts_on_dup_assets']:,}, "
        f"triggers {cases['triggers_on_dup_alerts']:,}, "
        f"news links {cases['news_links_on_dup_assets']:,}, "
        f"benchmarks {cases['benchmarks_on_dup_assets']:,}",
        f"  collisions after a merge             "
        f"portfolios holding 2+ of a group {cases['portfolios_holding_two_dups']:,}, "
        f"users watching 2+ {cases['users_watching_two_dups']:,}, "
        f"articles linking 2+ {cases['articles_linking_two_dups']:,}, "
        f"shared price timestamps {cases['price_timestamps_shared_by_dups']:,}",
        "  sector text                          "
        + ", ".join(
            f"{kind} {cases[f'sector_text_{kind}']:,}"
            for kind in ("exact", "case_or_space", "unmatched", "empty", "null")
        ),
        "  industry text                        "
        + ", ".join(
            f"{kind} {cases[f'industry_text_{kind}']:,}"
            for kind in ("exact", "case_or_space", "ambiguous", "unmatched", "empty", "null")
        ),
        f"  refs already set                     sector_ref {cases['sector_ref_set']:,}, "
        f"industry_ref {cases['industry_ref_set']:,}",
        f"  alerts with triggers                 {cases['alerts_with_triggers']:,}",
    ]
    return "\n".join(lines)
