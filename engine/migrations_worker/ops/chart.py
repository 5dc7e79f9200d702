"""A run's batches over time, as the figures of its chart: how the throttle moved the batch
size, and what each batch cost. The template (`migrations_worker/batch_chart.html`) draws them
as inline SVG (no script, no CDN), every value escaped by the template engine."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import BatchStatus, JobRun
from ..runs.progress import format_duration

CHART_POINTS = 600  # at most this many batches drawn: every n-th of a longer run
WIDTH, HEIGHT, LEFT, RIGHT = 900, 290, 70, 20
PANEL_HEIGHT = 100
RETRIED = "#c0392b"  # a batch drawn in this colour failed an attempt
RETRIED_STATUSES = (BatchStatus.FAILED, BatchStatus.PENDING)


@dataclass(frozen=True)
class Dot:
    x: str
    y: str
    fill: str
    title: str


@dataclass(frozen=True)
class Panel:
    """One value over time (batch size, or duration): its axis, line and dots."""

    label: str
    unit: str
    colour: str
    top: int
    bottom: int
    top_value: str
    line: str
    dots: tuple[Dot, ...]


@dataclass(frozen=True)
class Chart:
    panels: tuple[Panel, ...]
    span: str  # how long after the first batch the last one started
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    label_x: int = LEFT - 8
    axis_y: int = HEIGHT - 8


def batch_chart(run: JobRun) -> Chart | None:
    """The chart of the run's finished batch attempts, or None before the first."""
    points = list(
        run.batches.exclude(started_at=None).exclude(duration_ms=None)
        .order_by("started_at").values_list("started_at", "batch_size", "duration_ms", "status",
                                            "start_key", "end_key", "rows_affected")
    )
    if not points:
        return None
    points = points[::max(1, len(points) // CHART_POINTS)]
    t0 = points[0][0]
    seconds = [(p[0] - t0).total_seconds() for p in points]
    span = max(seconds[-1], 1e-6)
    plot = WIDTH - LEFT - RIGHT
    xs = [LEFT + plot * s / span if len(points) > 1 else LEFT + plot / 2 for s in seconds]
    titles = [f"({start}, {end}]: {size:,} keys, {rows:,} rows, {ms:,.0f} ms"
              for _, size, ms, _, start, end, rows in points]
    fills = [p[3] in RETRIED_STATUSES for p in points]

    def panel(top: int, values: list[float], colour: str, label: str, unit: str) -> Panel:
        top_value = max(values) or 1
        ys = [top + PANEL_HEIGHT - PANEL_HEIGHT * v / top_value for v in values]
        dots = tuple(Dot(f"{x:.1f}", f"{y:.1f}", RETRIED if retried else colour, title)
                     for x, y, retried, title in zip(xs, ys, fills, titles, strict=True))
        return Panel(label, unit, colour, top, top + PANEL_HEIGHT, f"{top_value:,.0f}",
                     " ".join(f"{d.x},{d.y}" for d in dots), dots)

    return Chart(
        panels=(panel(20, [p[1] for p in points], "#2a6ebb", "batch size", "keys"),
                panel(160, [p[2] for p in points], "#d9822b", "duration", "ms")),
        span=format_duration(span),
    )
