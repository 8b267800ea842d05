"""Overload, ours in the kernel: goodput against the capacity measured in the same run, for the MLP and a slow twin.

Each subject's capacity is its 2xx/s in a saturating closed loop just before its overload scenarios. Then
come closed loops far past it whose clients retry every 503 at once (a retry storm ignoring
``Retry-After``), an open loop at 4x capacity, and a disconnect storm whose clients give up after 5 ms.
A ``1+1`` cell is timed in the kernel throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.in_kernel import KernelService
from bench.kernel import BenchKernel, RoundtripProbe
from bench.measure import Measurement, Settings, measure
from bench.servers import free_port, wait_ready

# Deliberately low capacity: at most 8 rows per 20 ms model call, about 400 rows/s.
SLOW_TWIN_CELL = """\
%%bento serve mlp_overload --port {port}
import time
from bento_jupyter import api
@api(batchable=True, max_batch_size=8, max_latency_ms=50)
def predict(inputs: np.ndarray) -> np.ndarray:
    time.sleep(0.02)
    with torch.inference_mode():
        return model(torch.from_numpy(inputs.astype(np.float32, copy=False))).numpy()
"""
GIVE_UP_S = 0.005


@dataclass(frozen=True)
class Subject:
    label: str
    budget_ms: float  # the API's max_latency_ms
    capacity_connections: int  # a closed loop that saturates it


@dataclass(frozen=True)
class Scenario:
    label: str
    connections: int
    capacity_factor: float | None = None  # open loop at this multiple of the capacity
    give_up_s: float | None = None  # clients close their connection after this long without an answer


MLP = Subject("MLP, 10 ms budget", 10, 64)
SLOW_TWIN = Subject("slow twin (8 rows / 20 ms call), 50 ms budget", 50, 16)
SCENARIOS = (
    Scenario("c=256 closed loop, 503s retried at once", 256),
    Scenario("c=1024 closed loop, 503s retried at once", 1024),
    Scenario("4x capacity, open loop (256 connections)", 256, capacity_factor=4),
    Scenario(f"disconnect storm: c=256, give up after {GIVE_UP_S * 1000:g} ms", 256, give_up_s=GIVE_UP_S),
)


@dataclass
class Run:
    scenario: Scenario
    measurement: Measurement
    offered_per_s: float | None
    cell_rtt_s: list[float]


@dataclass
class SubjectReport:
    subject: Subject
    capacity: Measurement | None = None
    capacity_rtt_s: list[float] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    failed: str | None = None


def _probed(kernel: BenchKernel, service: KernelService, body: Path, connections: int, settings: Settings, **kw):
    probe = RoundtripProbe(kernel)
    return measure(service, body, connections, settings, [probe], **kw), probe.samples_s


def run_subject(
    kernel: BenchKernel, service: KernelService, subject: Subject, body: Path, settings: Settings
) -> SubjectReport:
    """Capacity, then every scenario, each with the ``1+1`` cell probe running."""
    report = SubjectReport(subject)
    report.capacity, report.capacity_rtt_s = _probed(kernel, service, body, subject.capacity_connections, settings)
    capacity = report.capacity.load.ok_per_s
    for scenario in SCENARIOS:
        rate = scenario.capacity_factor * capacity if scenario.capacity_factor else None
        measured, rtt = _probed(
            kernel, service, body, scenario.connections, settings, rate=rate, timeout_s=scenario.give_up_s
        )
        report.runs.append(Run(scenario, measured, rate, rtt))
    return report


def run_slow_twin(kernel: BenchKernel, body: Path, settings: Settings) -> SubjectReport:
    """Serve the slow twin from a cell, run the subject on it, stop it."""
    service = KernelService(kernel.pid, free_port())
    kernel.execute(SLOW_TWIN_CELL.format(port=service.port))
    wait_ready(f"{service.url}/readyz", 30)
    try:
        return run_subject(kernel, service, SLOW_TWIN, body, settings)
    finally:
        kernel.execute("%bento stop mlp_overload")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _p99_ms(samples_s: list[float]) -> float | None:
    ordered = sorted(samples_s)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000 if ordered else None


REFUSAL_TARGET_S = 0.002  # issue 18's time-to-refusal p99


def refusals_needed(connections: int, capacity: float, budget_ms: float, offered: float | None) -> float:
    """The 503/s the targets take at the least, serving at full capacity: open loop, what is offered beyond it;
    closed loop with no think time, by Little's law (N = X_served * L_served + X_refused * L_refused, served
    within the budget, refused within 2 ms), (N - capacity * budget) / 2 ms."""
    if offered is not None:
        return max(0.0, offered - capacity)
    return max(0.0, (connections - capacity * budget_ms / 1000) / REFUSAL_TARGET_S)


_HEADER = (
    "",
    "offered/s",
    "2xx/s",
    "good/cap",
    "p99 ms",
    "need 503/s",
    "503/s",
    "503 p99",
    "errors",
    "gave up",
    "rows/s",
    "cell p99",
)
_WIDTHS = (52, 9, 7, 8, 7, 10, 7, 7, 6, 7, 8, 8)


def _line(cells: list[str]) -> str:
    return cells[0].ljust(_WIDTHS[0]) + "".join(c.rjust(w + 1) for c, w in zip(cells[1:], _WIDTHS[1:], strict=True))


def _row(
    label: str, m: Measurement, capacity: float, offered: float | None, rtt: list[float], budget: float, closed: bool
) -> str:
    load = m.load
    need = refusals_needed(load.connections, capacity, budget, offered) if closed or offered else 0.0
    over = "!" if load.ok.p99_ms is not None and load.ok.p99_ms > budget else ""
    gave_up = load.timeouts if label.startswith("  disconnect") else 0
    rows = f"{m.model_rows / load.seconds:.0f}" if m.model_rows is not None else "-"
    return _line(
        [
            label,
            f"{offered:.0f}" if offered else "closed",
            f"{load.ok_per_s:.0f}",
            f"{load.ok_per_s / capacity:.2f}" if capacity else "-",
            _ms(load.ok.p99_ms) + over,
            f"{need:.0f}" if need else "-",
            f"{load.refused.count / load.seconds:.0f}",
            _ms(load.refused.p99_ms),
            str(load.errors - gave_up),
            str(gave_up),
            rows,
            _ms(_p99_ms(rtt)),
        ]
    )


def render_overload(reports: list[SubjectReport]) -> str:
    """One table: per subject its capacity, then each scenario's goodput against it (good/cap)."""
    lines = [
        "overload, ours (kernel); good/cap = 2xx/s over the capacity measured just before; p99 of 2xx"
        " ('!' over the API's budget);\n  rows/s = rows the model computed (above 2xx/s: work for clients who left);"
        " cell p99 = a `1+1` cell's round trip meanwhile;\n  need 503/s = the fewest refusals a second that meet the"
        " targets while serving at capacity (Little's law: see bench/README.md)",
        _line(list(_HEADER)),
        "-" * (sum(_WIDTHS) + len(_WIDTHS) - 1),
    ]
    for report in reports:
        subject = report.subject
        if report.failed is not None or report.capacity is None:
            lines.append(f"{subject.label}: failed: {report.failed}")
            continue
        capacity = report.capacity.load.ok_per_s
        lines.append(f"{subject.label}")
        label = f"  capacity (c={subject.capacity_connections} closed loop)"
        lines.append(_row(label, report.capacity, capacity, None, report.capacity_rtt_s, subject.budget_ms, False))
        for run in report.runs:
            lines.append(
                _row(
                    f"  {run.scenario.label}",
                    run.measurement,
                    capacity,
                    run.offered_per_s,
                    run.cell_rtt_s,
                    subject.budget_ms,
                    run.scenario.give_up_s is None,
                )
            )
    return "\n".join(lines)
