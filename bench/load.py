"""Drive the C load generator (``loadgen.c``) pinned to its own core and read its report."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LOADGEN = Path(__file__).resolve().parent / ".build" / "loadgen"
CLIENT_CORE = 1


@dataclass(frozen=True)
class Latency:
    """Latencies of one class of responses, in milliseconds (None when there were none)."""

    count: int
    p50_ms: float | None
    p99_ms: float | None

    @classmethod
    def from_report(cls, report: dict[str, float]) -> Latency:
        count = int(report["count"])
        return cls(count, report["p50_ms"] if count else None, report["p99_ms"] if count else None)


@dataclass(frozen=True)
class LoadResult:
    """What the clients saw during the measured window."""

    connections: int
    seconds: float
    statuses: dict[int, int]
    ok: Latency  # 2xx
    refused: Latency  # 503
    other: Latency  # any other status
    socket_errors: int
    timeouts: int

    @property
    def ok_per_s(self) -> float:
        return self.ok.count / self.seconds

    @property
    def answered(self) -> int:
        return self.ok.count + self.refused.count + self.other.count

    @property
    def errors(self) -> int:
        """Failures other than 503: non-2xx statuses, socket errors and client timeouts."""
        return self.other.count + self.socket_errors + self.timeouts


def run_load(
    url: str,
    body: Path,
    connections: int,
    warmup_s: float,
    seconds: float,
    *,
    timeout_s: float = 10.0,
    on_start: Callable[[], None] | None = None,
    on_end: Callable[[], None] | None = None,
    rate: float | None = None,
) -> LoadResult:
    """``connections`` clients POST ``body`` to ``url``; hooks fire as the window opens and closes.

    Closed loop by default; with ``rate``, open loop: that many requests per second fall due,
    whatever the server does, and each one's latency counts from when it fell due.
    """
    parts = urlsplit(url)
    argv = ["taskset", "-c", str(CLIENT_CORE), str(LOADGEN), parts.hostname or "127.0.0.1", str(parts.port)]
    argv += [parts.path or "/", str(body), str(connections), str(warmup_s), str(seconds), str(timeout_s)]
    if rate is not None:
        argv.append(f"{rate:.1f}")
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        report = ""
        for line in proc.stdout:
            if line == "start\n" and on_start:
                on_start()
            elif line == "end\n" and on_end:
                on_end()
            elif line.startswith("{"):
                report = line
        if proc.wait() != 0 or not report:
            raise RuntimeError(f"load generator failed (exit {proc.returncode}): {' '.join(argv)}")
    data = json.loads(report)
    return LoadResult(
        connections=data["connections"],
        seconds=data["seconds"],
        statuses={int(k): v for k, v in data["statuses"].items()},
        ok=Latency.from_report(data["ok"]),
        refused=Latency.from_report(data["refused"]),
        other=Latency.from_report(data["other"]),
        socket_errors=data["socket_errors"],
        timeouts=data["timeouts"],
    )
