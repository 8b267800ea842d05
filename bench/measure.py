"""One measurement: a load run plus what the server spent (CPU, batch sizes) in the same window."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import requests

from bench.batch_metrics import BatchTotals, batch_totals
from bench.load import LoadResult, run_load
from bench.procstat import cpu_seconds


class Target(Protocol):
    """A running server: where to send load, which process tree to account, its batch size if fixed."""

    @property
    def url(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def batch_size(self) -> float | None: ...


class WindowHook(Protocol):
    """Something to run alongside the measured window (a probe, a sampler)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass(frozen=True)
class Settings:
    warmup_s: float = 1.5
    seconds: float = 6.0
    concurrencies: tuple[int, ...] = (1, 16, 64, 256)
    timeout_s: float = 10.0


@dataclass(frozen=True)
class Measurement:
    load: LoadResult
    cpu_percent: float
    mean_batch: float | None
    model_rows: float | None = None  # rows the model computed in the window (None: no batch metrics)


def measure(
    target: Target,
    body: Path,
    connections: int,
    settings: Settings,
    hooks: Sequence[WindowHook] = (),
    rate: float | None = None,
    timeout_s: float | None = None,
) -> Measurement:
    """Load ``target`` with ``connections`` clients; account its CPU and batches over the measured window.

    ``timeout_s`` (default ``settings.timeout_s``) is how long a client waits before it gives up and closes.
    """
    marks: dict[str, float] = {}
    batches: dict[str, BatchTotals | None] = {}
    scraper = requests.Session()  # its connection opens before the load: see batch_totals
    if target.batch_size is None:
        batch_totals(target.url, scraper)

    def on_start() -> None:
        marks["cpu0"], marks["t0"] = cpu_seconds(target.pid), time.monotonic()
        batches["start"] = batch_totals(target.url, scraper) if target.batch_size is None else None
        for hook in hooks:
            hook.start()

    def on_end() -> None:
        marks["cpu1"], marks["t1"] = cpu_seconds(target.pid), time.monotonic()
        batches["end"] = batch_totals(target.url, scraper) if target.batch_size is None else None
        for hook in hooks:
            hook.stop()

    load = run_load(
        f"{target.url}/predict",
        body,
        connections,
        settings.warmup_s,
        settings.seconds,
        timeout_s=settings.timeout_s if timeout_s is None else timeout_s,
        on_start=on_start,
        on_end=on_end,
        rate=rate,
    )
    scraper.close()
    cpu = 100 * (marks["cpu1"] - marks["cpu0"]) / (marks["t1"] - marks["t0"])
    start, end = batches.get("start"), batches.get("end")
    mean_batch, rows = target.batch_size, None
    if start is not None and end is not None:
        mean_batch, rows = end.mean_since(start), end.items - start.items
    return Measurement(load, cpu, mean_batch, rows)
