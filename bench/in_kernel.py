"""Ours in a real kernel: the ``%%bento serve`` cell, plus what only a kernel has (cell latency, RSS)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench.kernel import BenchKernel, RoundtripProbe
from bench.measure import Measurement, Settings, measure
from bench.procstat import Memory, memory
from bench.servers import ProcessServer, free_port, wait_ready

if TYPE_CHECKING:
    from bench.overload import SubjectReport

SETUP_CELL = """\
%load_ext bento_jupyter
import os
import numpy as np
import torch
from bench.model import load_mlp
model = load_mlp(os.environ["BENCH_WEIGHTS"])
"""

SERVE_CELL = """\
%%bento serve mlp --port {port}
from bento_jupyter import api
@api(batchable=True, max_batch_size=64, max_latency_ms=10)
def predict(inputs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(inputs.astype(np.float32, copy=False))).numpy()
"""

RTT_CONNECTIONS = 64
IDLE_RTT_SAMPLES = 30
SIDE_BY_SIDE_ROUNDS = 10  # alternating c=1 windows against the naive server, so drift hits both alike
SIDE_BY_SIDE_SECONDS = 1.0

Progress = Callable[[int, Measurement], None]


@dataclass
class KernelService:
    """A service the kernel serves on ``port`` (the measure.Target of the kernel row)."""

    pid: int
    port: int
    batch_size: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class MemorySampler:
    """Reads the kernel's VmRSS/VmHWM as each measured window closes; keeps the largest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak: Memory | None = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        now = memory(self.pid)
        rss = max(now.rss_mib, self.peak.rss_mib) if self.peak else now.rss_mib
        self.peak = Memory(rss, now.peak_mib)  # VmHWM only grows


@dataclass
class KernelReport:
    """The kernel row and its extras."""

    grid: dict[int, Measurement] = field(default_factory=dict)
    memory_before: Memory | None = None
    memory_serving: Memory | None = None
    rtt_idle_s: list[float] = field(default_factory=list)
    rtt_saturated_s: list[float] = field(default_factory=list)
    while_probing: Measurement | None = None  # the load run during which rtt_saturated_s was taken
    c1_side_by_side: list[tuple[Measurement, Measurement]] = field(default_factory=list)  # (ours, naive) rounds
    service: KernelService | None = None  # the MLP the cell serves (still serving after the row)
    overload: list[SubjectReport] = field(default_factory=list)  # filled by bench.run.run_overload


def run_kernel_row(
    kernel: BenchKernel,
    body: Path,
    settings: Settings,
    report: KernelReport,
    progress: Progress,
    rival: ProcessServer | None = None,
) -> None:
    """Serve the MLP from a cell and load it at every concurrency, timing cells and reading RSS.

    With a ``rival`` (the naive server), c=1 is also measured in short windows alternating
    between the two: this machine's speed drifts over minutes, and c=1 compares latencies
    within a fraction of a millisecond.
    """
    kernel.execute(SETUP_CELL)
    report.memory_before = memory(kernel.pid)
    report.rtt_idle_s = [kernel.roundtrip_s() for _ in range(IDLE_RTT_SAMPLES)]

    service = report.service = KernelService(kernel.pid, free_port())
    kernel.execute(SERVE_CELL.format(port=service.port))
    wait_ready(f"{service.url}/readyz", 30)
    sampler = MemorySampler(kernel.pid)
    for connections in settings.concurrencies:
        report.grid[connections] = measured = measure(service, body, connections, settings, [sampler])
        progress(connections, measured)
    # Its own run: the probe's cells take kernel time, which would lower the grid's figure.
    probe = RoundtripProbe(kernel)
    report.while_probing = measure(service, body, RTT_CONNECTIONS, settings, [sampler, probe])
    report.rtt_saturated_s = probe.samples_s
    report.memory_serving = sampler.peak
    if rival is not None:
        report.c1_side_by_side = side_by_side(service, rival, body, settings)


def side_by_side(
    ours: KernelService, rival: ProcessServer, body: Path, settings: Settings
) -> list[tuple[Measurement, Measurement]]:
    """c=1 on ``ours`` and on ``rival`` in alternating short windows; both stay up throughout."""
    window = replace(settings, seconds=SIDE_BY_SIDE_SECONDS, warmup_s=min(settings.warmup_s, 0.5))
    rival.start()
    try:
        pairs = []
        for round_ in range(SIDE_BY_SIDE_ROUNDS):  # who goes first alternates too, so drift within a round cancels
            swapped = round_ % 2 == 1
            first, second = (measure(s, body, 1, window) for s in ((rival, ours) if swapped else (ours, rival)))
            pairs.append((second, first) if swapped else (first, second))
        return pairs
    finally:
        rival.stop()
