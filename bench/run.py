"""Run every server on the same model, weights and load, then print one table (``python -m bench``)."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.in_kernel import KernelReport, run_kernel_row
from bench.kernel import BenchKernel, CellError
from bench.load import LOADGEN
from bench.measure import Measurement, Settings, measure
from bench.model import IN_FEATURES, save_weights
from bench.model_rate import BATCH, measure_on_core
from bench.overload import MLP, SLOW_TWIN, SubjectReport, render_overload, run_slow_twin, run_subject
from bench.servers import (
    REPO,
    SERVER_CORE,
    ProcessServer,
    Unavailable,
    bentoml_server,
    naive_server,
    noop_server,
    standalone_server,
)
from bench.table import Row, ms, render_bound, render_grid, render_kernel, render_ratios

WORKDIR = REPO / "bench" / ".build" / "run"
ROWS = ("kernel", "overload", "standalone", "bentoml", "bentoml-10ms", "bentoml-unbatched", "naive", "noop")
KERNEL_LABEL = "ours, kernel (%%bento serve)"
BENTOML_LABEL = "BentoML batched, 1000 ms"
NOOP_LABEL = "uvicorn no-op (ceiling)"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_body(path: Path, seed: int = 0) -> Path:
    """The request every client sends: one JSON row of 256 floats."""
    rng = random.Random(seed)
    path.write_text(json.dumps({"inputs": [[round(rng.uniform(-1, 1), 6) for _ in range(IN_FEATURES)]]}))
    return path


def server_env(workdir: Path, weights: Path) -> dict[str, str]:
    """The environment of every server: one intra-op thread, the shared weights, private homes."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "BENCH_WEIGHTS": str(weights),
        "BENTO_JUPYTER_HOME": str(workdir / "bento_jupyter_home"),
        "BENTOML_HOME": str(workdir / "bentoml_home"),
        "BENTOML_DO_NOT_TRACK": "True",
        "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO),
    }


def report_progress(connections: int, m: Measurement) -> None:
    load = m.load
    log(f"  c={connections}: {load.ok_per_s:.0f} req/s, p99 {ms(load.ok.p99_ms)} ms, {load.refused.count} 503s")


def run_process_row(server: ProcessServer, body: Path, settings: Settings) -> Row:
    """Start ``server``, load it at every concurrency, stop it."""
    row = Row(server.label)
    log(f"starting {server.label}")
    try:
        server.start()
        for connections in settings.concurrencies:
            row.grid[connections] = measured = measure(server, body, connections, settings)
            report_progress(connections, measured)
    except (Unavailable, RuntimeError) as exc:
        row.unavailable = str(exc)
        log(f"  unavailable: {exc}")
    finally:
        server.stop()
    return row


def build_standalone(kernel: BenchKernel, env: dict[str, str], logs: Path) -> ProcessServer | Row:
    """``%bento build mlp`` in the kernel, ready for ``bento-jupyter serve mlp``; a Row saying why not."""
    server = standalone_server(env, logs, "mlp")
    if shutil.which("bento-jupyter") is None:
        return Row(server.label, unavailable="bento-jupyter is not on PATH")
    try:
        kernel.execute("%bento build mlp")
    except CellError as exc:
        return Row(server.label, unavailable=f"%bento build mlp failed: {exc}")
    return server


def run_overload(kernel: BenchKernel, body: Path, settings: Settings, report: KernelReport) -> None:
    """The MLP and its slow twin: capacity, then the overload scenarios, into ``report.overload``."""
    for subject in (MLP, SLOW_TWIN):
        log(f"overload: {subject.label}: capacity, then retry storms at c=256 and c=1024, 4x open loop, disconnects")
        try:
            if subject is MLP and report.service is not None:
                done = run_subject(kernel, report.service, MLP, body, settings)
            else:
                done = run_slow_twin(kernel, body, settings)
        except (CellError, Unavailable, RuntimeError) as exc:
            done = SubjectReport(subject, failed=f"{type(exc).__name__}: {exc}")
            log(f"  overload failed: {done.failed}")
        report.overload.append(done)


def run_kernel_rows(
    env: dict[str, str], body: Path, settings: Settings, wanted: set[str], logs: Path
) -> tuple[list[Row], KernelReport]:
    """The kernel row, then (built in that kernel, served once it is gone) the standalone row."""
    report = KernelReport()
    row = Row(KERNEL_LABEL, grid=report.grid)
    standalone: ProcessServer | Row | None = None
    kernel = BenchKernel(env)
    try:
        log("starting a kernel (jupyter_client) pinned to core 0")
        kernel.start()
        if "kernel" in wanted:
            log(f"serving from a cell: {KERNEL_LABEL}")
            rival = naive_server(env, logs) if "naive" in wanted else None
            run_kernel_row(kernel, body, settings, report, report_progress, rival)
        if "standalone" in wanted:
            standalone = build_standalone(kernel, env, logs)
        if "kernel" in wanted and "overload" in wanted:
            run_overload(kernel, body, settings, report)
    except (CellError, Unavailable, RuntimeError) as exc:
        row.unavailable = f"{type(exc).__name__}: {exc}"
        log(f"  kernel row failed: {row.unavailable}")
    finally:
        kernel.shutdown()
    rows = [row] if "kernel" in wanted else []
    if isinstance(standalone, ProcessServer):
        standalone = run_process_row(standalone, body, settings)
    if standalone is not None:
        rows.append(standalone)
    return rows, report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=Settings.seconds, help="measured window per cell")
    parser.add_argument("--warmup", type=float, default=Settings.warmup_s, help="unmeasured lead-in per cell")
    parser.add_argument("--concurrency", default=",".join(map(str, Settings.concurrencies)), help="comma-separated")
    parser.add_argument("--only", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(
        warmup_s=args.warmup,
        seconds=args.seconds,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
    )
    wanted = set(args.only.split(","))
    if unknown := wanted - set(ROWS):
        sys.exit(f"unknown rows: {', '.join(sorted(unknown))} (choose from {', '.join(ROWS)})")
    if "overload" in wanted:  # its MLP is the kernel row's service
        wanted.add("kernel")
    if not LOADGEN.exists():
        sys.exit(f"{LOADGEN} is missing: run bash bench/setup (or bash bench/run)")
    began = time.monotonic()
    shutil.rmtree(WORKDIR, ignore_errors=True)
    logs = WORKDIR / "logs"
    logs.mkdir(parents=True)
    weights = save_weights(WORKDIR / "mlp.pt")
    body = write_body(WORKDIR / "body.json")
    env = server_env(WORKDIR, weights)

    log(f"the model alone: batch-{BATCH} forward on core {SERVER_CORE}")
    model_rows_per_s = measure_on_core(SERVER_CORE, str(weights), env)
    rows, report = run_kernel_rows(env, body, settings, wanted, logs)
    process_rows: list[tuple[str, Callable[[], ProcessServer]]] = [
        ("bentoml", lambda: bentoml_server("MLPBatched", BENTOML_LABEL, env, logs)),
        ("bentoml-10ms", lambda: bentoml_server("MLPBatched10ms", "BentoML batched, 10 ms", env, logs)),
        ("bentoml-unbatched", lambda: bentoml_server("MLPUnbatched", "BentoML unbatched", env, logs)),
        ("naive", lambda: naive_server(env, logs)),
        ("noop", lambda: noop_server(env, logs)),
    ]
    for key, make in process_rows:
        if key in wanted:
            try:
                rows.append(run_process_row(make(), body, settings))
            except Unavailable as exc:
                rows.append(Row(key, unavailable=str(exc)))

    print()
    print(
        f"MLP 256-1024-1024-10 fp32, 1 row/request; server on core 0, load on core 1;"
        f" {settings.warmup_s:g}s warmup + {settings.seconds:g}s per cell"
    )
    print(render_grid(rows, settings.concurrencies))
    by_label = {row.label: row for row in rows if row.unavailable is None}
    ours = by_label.get(KERNEL_LABEL)
    others = [by_label[label] for label in (BENTOML_LABEL, NOOP_LABEL) if label in by_label]
    if ours is not None and others:
        print()
        print(render_ratios(ours, others, settings.concurrencies))
    noop = by_label.get(NOOP_LABEL)
    print()
    print(render_bound(model_rows_per_s, BATCH, noop, ours, settings.concurrencies))
    if "kernel" in wanted:
        print()
        print(render_kernel(report))
    if report.overload:
        print()
        print(render_overload(report.overload))
    print(f"\ntotal {time.monotonic() - began:.0f}s; server logs in {logs}")
    return 0
