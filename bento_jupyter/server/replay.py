"""Replay a bento's stored samples against the bento itself, loaded the way ``bento-jupyter serve`` loads it,
and say where its answers differ from the kernel's beyond each API's tolerance."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from starlette.types import Message

from bento_jupyter.bento.build import SAMPLES_FILE
from bento_jupyter.bento.loader import load_bento
from bento_jupyter.bento.manifest_model import Verification, VerificationState
from bento_jupyter.bento.trust import TRUST_FLAG, TrustPolicy
from bento_jupyter.errors import BentoJupyterError
from bento_jupyter.server.app import ServiceApp
from bento_jupyter.server.samples import MAX_SAMPLE_MIB, read_json
from bento_jupyter.service.schema import NDJSON_MEDIA_TYPE

_SHOWN_CHARS = 200
_NOT_KEPT = f"a request and its answer over {MAX_SAMPLE_MIB} MiB together are not kept as a sample"
_SHOWN_PATHS = 10  # differing paths listed per sample


class VerificationError(BentoJupyterError):
    """A bento does not answer its stored samples as the kernel did (or cannot be loaded to try)."""


@dataclass(frozen=True)
class Mismatch:
    """One sample the bento answered differently: which API, which sample, where in the answer."""

    api: str
    index: int
    source: str
    request: Any
    detail: str

    def describe(self) -> str:
        request = json.dumps(self.request)
        shown = request if len(request) <= _SHOWN_CHARS else request[:_SHOWN_CHARS] + "..."
        return f"  {self.api} sample {self.index} ({self.source}): {self.detail}\n    request {shown}"


@dataclass
class Report:
    """The outcome of one replay."""

    replayed: int = 0
    opted_out: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    unsampled: list[str] = field(default_factory=list)  # APIs to verify with no answered request to replay

    @property
    def passed(self) -> bool:
        """No sample answered differently (which proves nothing when none was replayed: see ``state``)."""
        return not self.mismatches

    @property
    def state(self) -> VerificationState:
        """``failed``, ``passed`` (every API checked), ``partial`` (some APIs had nothing to replay) or
        ``unverified`` (nothing was replayed)."""
        if self.mismatches:
            return "failed"
        if not self.replayed:
            return "unverified"
        return "partial" if self.unsampled else "passed"

    def summary(self) -> str:
        opted = f"; not verified (verify=False): {', '.join(self.opted_out)}" if self.opted_out else ""
        unsampled = ", ".join(self.unsampled)
        if self.state == "unverified":
            apis = f" ({unsampled})" if unsampled else ""
            return (
                f"NOT VERIFIED: no answered request to replay{apis}{opted}; send the service requests (or give"
                " @api(examples=...)) before building, so the bento can be checked against the kernel's answers"
                f" ({_NOT_KEPT})"
            )
        if self.passed:
            gap = f"; NOT VERIFIED (no answered request to replay; {_NOT_KEPT}): {unsampled}" if unsampled else ""
            return f"verified: {self.replayed} sample(s) answered as the kernel did{gap}{opted}"
        lines = [f"{len(self.mismatches)} of {self.replayed} sample(s) answered differently than the kernel{opted}:"]
        return "\n".join(lines + [m.describe() for m in self.mismatches])

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "replayed": self.replayed,
            "opted_out": self.opted_out,
            "unsampled": self.unsampled,
            "mismatches": [vars(m) for m in self.mismatches],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        mismatches = [Mismatch(**m) for m in data["mismatches"]]
        return cls(data["replayed"], data["opted_out"], mismatches, data.get("unsampled", []))


def verification_line(verification: Verification) -> str:
    """A manifest's ``verification`` in one line, as ``bento-jupyter verify`` words its report."""
    return Report(verification.replayed, verification.opted_out, [], verification.unsampled).summary()


def verification_warning(verification: Verification | None) -> str | None:
    """The NOT VERIFIED line for a manifest's ``verification`` when not every API was checked, else None."""
    if verification is None:
        return "NOT VERIFIED at build (built with --no-verify)"
    report = Report(verification.replayed, verification.opted_out, [], verification.unsampled)
    return None if report.state == "passed" else report.summary()


EXIT_CODES = {"passed": 0, "failed": 1, "partial": 3, "unverified": 3}  # `bento-jupyter verify`


def difference(expected: Any, actual: Any, tolerance: float) -> str | None:
    """Every path where ``actual`` differs from ``expected`` (numbers within ``tolerance``, relative or absolute),
    the first ``_SHOWN_PATHS`` of them one per line, or None when they match."""
    found = list(itertools.islice(_differences(expected, actual, tolerance, "$"), _SHOWN_PATHS + 1))
    if not found:
        return None
    more = [f"(more paths differ; the first {_SHOWN_PATHS} are shown)"] if len(found) > _SHOWN_PATHS else []
    return "\n    ".join(found[:_SHOWN_PATHS] + more)


def _differences(expected: Any, actual: Any, tolerance: float, path: str) -> Iterator[str]:
    if _is_number(expected) and _is_number(actual):
        if not _numbers_match(expected, actual, tolerance):
            yield f"{path}: the kernel answered {expected!r}, the bento {actual!r} (tolerance {tolerance:g})"
    elif type(expected) is not type(actual):
        yield f"{path}: the kernel answered {_short(expected)}, the bento {_short(actual)}"
    elif isinstance(expected, dict):
        if expected.keys() != actual.keys():
            yield f"{path}: the kernel answered keys {sorted(expected)}, the bento {sorted(actual)}"
        for key in (k for k in expected if k in actual):
            yield from _differences(expected[key], actual[key], tolerance, f"{path}.{key}")
    elif isinstance(expected, list):
        if len(expected) != len(actual):
            yield f"{path}: the kernel answered {len(expected)} items, the bento {len(actual)}"
        else:
            for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
                yield from _differences(e, a, tolerance, f"{path}[{i}]")
    elif expected != actual:
        yield f"{path}: the kernel answered {_short(expected)}, the bento {_short(actual)}"


def _numbers_match(expected: float, actual: float, tolerance: float) -> bool:
    """``math.isclose`` with ``tolerance`` as both its relative and absolute bound, computed exactly: integers
    beyond a float's precision or range compare digit for digit (a float would round them together)."""
    if any(isinstance(n, float) and not math.isfinite(n) for n in (expected, actual)):
        return expected == actual or (math.isnan(expected) and math.isnan(actual))
    exact, got, bound = Fraction(expected), Fraction(actual), Fraction(tolerance)
    largest: Fraction = max(abs(exact), abs(got), Fraction(1))
    return abs(exact - got) <= bound * largest


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:80] + "..."


async def _post(app: ServiceApp, route: str, body: bytes, accept: bytes) -> tuple[int, bytes, str]:
    """One request through the ASGI app in this process, as uvicorn would deliver it."""
    done = asyncio.Event()
    delivered = False
    status, media, chunks = 0, "", []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, media
        if message["type"] == "http.response.start":
            status = message["status"]
            media = dict(message.get("headers", [])).get(b"content-type", b"").decode()
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"accept", accept),
        ],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    await app(scope, receive, send)
    return status, b"".join(chunks), media


def _answer_value(body: bytes, media: str, stream: bool) -> Any:
    """The bento's answer, read as the kernel's answers were (``read_json``: big integers stay exact)."""
    if stream:  # one JSON value per line: the stream's items (a failure mid-stream is a last {"error": ...})
        return [read_json(line) for line in body.splitlines() if line.strip()]
    if media.startswith("application/json"):
        return read_json(body)
    return body.decode(errors="replace")


def _request_body(exchange: dict[str, Any]) -> bytes:
    """The request as the kernel's server received it; a bento built before bodies were kept sends its parsed
    value written by the standard library (which keeps NaN, ±Infinity and big integers, as orjson does not)."""
    if "body" in exchange:
        return str(exchange["body"]).encode()
    return json.dumps(exchange["request"], ensure_ascii=False).encode()


async def _replay_one(app: ServiceApp, api: dict[str, Any], exchange: dict[str, Any], accept: bytes) -> str | None:
    """How the bento's answer to one sample differs from the kernel's, or None."""
    path = exchange.get("path", api["route"])  # a v2 infer's exchange replays through v2 infer
    status, body, media = await _post(app, path, _request_body(exchange), accept)
    if status != 200:
        return f"the kernel answered 200, the bento {status}: {body.decode(errors='replace')[:300]}"
    try:
        answer = _answer_value(body, media, bool(api.get("stream")))
    except ValueError as exc:
        return f"the bento's answer is not valid JSON: {exc}"
    return difference(exchange["response"], answer, api["tolerance"])


async def _replay(app: ServiceApp, samples: dict[str, Any]) -> Report:
    report = Report()
    for name, api in sorted(samples["apis"].items()):
        if not api["verify"]:
            report.opted_out.append(name)
            continue
        if not api["exchanges"]:
            report.unsampled.append(name)
        accept = NDJSON_MEDIA_TYPE.encode() if api.get("stream") else b"application/json"
        for index, exchange in enumerate(api["exchanges"]):
            report.replayed += 1
            try:
                detail = await _replay_one(app, api, exchange, accept)
            except Exception as exc:  # the replay itself failed on this sample: name it, as any difference
                detail = f"replaying it failed: {type(exc).__name__}: {exc}"
            if detail:
                report.mismatches.append(Mismatch(name, index, exchange["source"], exchange["request"], detail))
    await app.retire(list(app.endpoints.values()))
    return report


def read_samples(root: Path) -> dict[str, Any]:
    path = root / SAMPLES_FILE
    return json.loads(path.read_text()) if path.is_file() else {"apis": {}}


def replay_samples(root: Path, trust: TrustPolicy) -> Report:
    """Load the bento at ``root`` as ``bento-jupyter serve`` does and replay its samples in this process."""
    try:
        definition, manifest = load_bento(root, trust)
    except BentoJupyterError:
        raise
    except Exception as exc:  # the bento's own code failed to load: say so in one line, with what to do
        hint = ""
        if isinstance(exc, ModuleNotFoundError):
            hint = (
                f"; {exc.name!r} is not an installed distribution: install it as a package (it then becomes a"
                " requirement) or define what the handler needs from it in the notebook"
            )
        raise VerificationError(f"{root.name} does not load: {type(exc).__name__}: {exc}{hint}") from None
    settings = manifest.served_settings  # as `bento-jupyter serve` would apply them
    app = ServiceApp(definition, settings.max_body_bytes, run_tasks=False)
    return asyncio.run(_replay(app, read_samples(root)))


def verify_in_subprocess(root: Path, timeout: float = 600.0) -> Report:
    """``bento-jupyter verify ROOT`` in a fresh interpreter: nothing of this process (the kernel) can help.

    Raises VerificationError when the bento cannot even be loaded there (the command's own message).
    Its pickles are trusted: the caller has just written them from its own objects.
    """
    command = [sys.executable, "-m", "bento_jupyter.cli", "verify", str(root), "--json", TRUST_FLAG]
    try:
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise VerificationError(f"verifying {root.name} took longer than {timeout:g}s") from None
    try:
        # A whole report decides, however the process ended after writing it: an abort in the interpreter's
        # teardown (C++ threads of the bento's libraries: "terminate called without an active exception", seen
        # once under load) comes after every sample was replayed.
        return Report.from_json(read_json(done.stdout.encode()))
    except (ValueError, KeyError, TypeError):
        pass
    if done.returncode not in set(EXIT_CODES.values()):
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1].removeprefix("bento-jupyter: error: ")
        raise VerificationError(f"the bento does not load in a fresh process: {reason}")
    said = (done.stderr.strip() or done.stdout.strip() or "nothing").splitlines()[-1][:300]  # not a report
    raise VerificationError(f"verifying {root.name} gave no report (exit {done.returncode}): {said}")


def build_check(root: Path) -> Verification:
    """Verify a freshly written bento in a fresh process; the manifest's ``verification``, or raise.

    A bento with APIs that had no answered request to replay is stored, but its ``state`` says
    ``unverified`` or ``partial`` and ``unsampled`` names those APIs."""
    report = verify_in_subprocess(root)
    if not report.passed:
        raise VerificationError(
            f"the bento was not stored: {report.summary()}\n"
            "Fix the notebook so the captured code gives the served answers, widen the API's tolerance=,"
            " or mark a non-deterministic API verify=False. If the notebook changed the service's state after"
            " these requests were answered, ask them again: the latest answer to a request is the one kept"
        )
    unsampled = {"unsampled": report.unsampled} if report.unsampled else {}  # absent when every API was sampled
    return Verification(state=report.state, replayed=report.replayed, opted_out=report.opted_out, **unsampled)
