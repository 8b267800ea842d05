"""Render the results as plain-text tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median

from bench.in_kernel import RTT_CONNECTIONS, SIDE_BY_SIDE_SECONDS, KernelReport
from bench.measure import Measurement

_HEADER = ("server", "conc", "req/s", "p50 ms", "p99 ms", "errors", "503", "batch", "CPU%")
_WIDTHS = (30, 5, 8, 8, 8, 7, 7, 6, 5)


@dataclass
class Row:
    """One server's measurements by concurrency, or the reason it could not run."""

    label: str
    grid: dict[int, Measurement] = field(default_factory=dict)
    unavailable: str | None = None


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _line(cells: Sequence[str]) -> str:
    first = cells[0].ljust(_WIDTHS[0])
    return first + "".join(c.rjust(w + 1) for c, w in zip(cells[1:], _WIDTHS[1:], strict=True))


def render_grid(rows: Sequence[Row], concurrencies: Sequence[int]) -> str:
    lines = [_line(_HEADER), "-" * (sum(_WIDTHS) + len(_WIDTHS) - 1)]
    for row in rows:
        if row.unavailable is not None:
            lines.append(f"{row.label.ljust(_WIDTHS[0])} unavailable: {row.unavailable}")
            continue
        for i, conc in enumerate(concurrencies):
            m = row.grid.get(conc)
            label = row.label if i == 0 else ""
            if m is None:
                lines.append(_line([label, str(conc), *["-"] * 7]))
                continue
            load = m.load
            batch = f"{m.mean_batch:.1f}" if m.mean_batch is not None else "-"
            lines.append(
                _line(
                    [
                        label,
                        str(conc),
                        f"{load.ok_per_s:.0f}",
                        ms(load.ok.p50_ms),
                        ms(load.ok.p99_ms),
                        str(load.errors),
                        str(load.refused.count),
                        batch,
                        f"{m.cpu_percent:.0f}",
                    ]
                )
            )
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def render_ratios(ours: Row, others: Sequence[Row], concurrencies: Sequence[int]) -> str:
    """ours ÷ each other row: throughput (2xx/s) and p99 at each concurrency."""
    lines = [f"{'ours (kernel) / ...':<36}" + "".join(f"{f'c={c}':>9}" for c in concurrencies)]
    for other in others:
        for what, pick in (("req/s", lambda m: m.load.ok_per_s), ("p99", lambda m: m.load.ok.p99_ms)):
            cells = []
            for c in concurrencies:
                a, b = ours.grid.get(c), other.grid.get(c)
                cells.append(_ratio(pick(a) if a else None, pick(b) if b else None))
            lines.append(f"{other.label + ' ' + what:<36}" + "".join(f"{x:>9}" for x in cells))
    return "\n".join(lines)


def _quantiles_ms(samples_s: Sequence[float]) -> str:
    if not samples_s:
        return "no samples"
    ordered = sorted(samples_s)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {ms(at(0.5))} ms, p99 {ms(at(0.99))} ms (n={len(ordered)})"


def render_bound(
    model_rows_per_s: float, batch: int, noop: Row | None, ours: Row | None, concurrencies: Sequence[int]
) -> str:
    """What one core can do at best: the HTTP ceiling's cost plus the model's own cost per row."""
    lines = [f"model alone, batch {batch}, server core: {model_rows_per_s:.0f} rows/s"]
    if noop is None:
        return lines[0]
    for conc in concurrencies:
        ceiling = noop.grid.get(conc)
        if ceiling is None or not ceiling.load.ok_per_s:
            continue
        bound = 1 / (1 / ceiling.load.ok_per_s + 1 / model_rows_per_s)
        mine = ours.grid.get(conc) if ours is not None else None
        share = f"; ours {mine.load.ok_per_s / bound:.0%} of it" if mine is not None else ""
        lines.append(
            f"  c={conc}: no-op HTTP + model per row = at most {bound:.0f} req/s"
            f" ({bound / ceiling.load.ok_per_s:.0%} of the ceiling){share}"
        )
    return "\n".join(lines)


def _side_by_side_summary(rounds: Sequence[tuple[Measurement, Measurement]]) -> str:
    pairs = [(ours.load.ok.p50_ms, naive.load.ok.p50_ms) for ours, naive in rounds]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not pairs:
        return "c=1 side by side with the naive server: no answers"
    ours_ms, naive_ms = median(a for a, _ in pairs), median(b for _, b in pairs)
    each = ", ".join(f"{a / b:.2f}x" for a, b in pairs)
    return (
        f"c=1 side by side ({len(pairs)} alternating {SIDE_BY_SIDE_SECONDS:g} s windows): p50 ours {ms(ours_ms)} ms,"
        f" starlette 1 forward/request {ms(naive_ms)} ms, median ratio {median(a / b for a, b in pairs):.2f}x"
        f" (rounds: {each})"
    )


def render_kernel(report: KernelReport) -> str:
    lines = [
        f"cell `1+1` round trip, kernel idle:            {_quantiles_ms(report.rtt_idle_s)}",
        f"cell `1+1` round trip, serving at c={RTT_CONNECTIONS}:       {_quantiles_ms(report.rtt_saturated_s)}"
        + (f"; server meanwhile {report.while_probing.load.ok_per_s:.0f} req/s" if report.while_probing else ""),
    ]
    if report.c1_side_by_side:
        lines.append(_side_by_side_summary(report.c1_side_by_side))
    before, serving = report.memory_before, report.memory_serving
    if before and serving:
        lines.append(
            f"kernel memory: before serving VmRSS {before.rss_mib:.0f} MiB (VmHWM {before.peak_mib:.0f}),"
            f" while serving VmRSS {serving.rss_mib:.0f} MiB (VmHWM {serving.peak_mib:.0f})"
        )
    return "\n".join(lines)
