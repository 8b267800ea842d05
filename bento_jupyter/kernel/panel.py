"""The output of a ``%%bento serve`` cell: a live panel in JupyterLab, plain text elsewhere."""

from __future__ import annotations

from bento_jupyter.capture.lineage import kernel_id
from bento_jupyter.server.running import RunningService

MIME_TYPE = "application/vnd.bento-jupyter.service+json"


def describe_endpoints(service: RunningService) -> list[str]:
    lines = []
    for route, method in service.definition.apis.items():
        config = method.config
        batching = (
            f"batched, <= {config.max_batch_size} items, {config.max_latency_ms:g} ms budget"
            if config.batchable
            else "unbatched"
        )
        if method.is_stream:
            batching = "streamed: text/event-stream, or NDJSON on request"
        elif config.task:
            batching += f"; task: {route}/submit, /status, /get, /cancel, /retry"
        lines.append(f"POST {route}  ({batching})")
    return lines


def _one_decimal(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def summary_text(service: RunningService, skipped: dict[str, str] | None = None) -> str:
    """The plain-text panel: URL, endpoints and live numbers, then the cell's functions that are not endpoints."""
    state = "serving" if service.running else "stopped"
    lines = [f"{service.name} {state} at {service.url}  (docs: {service.url}/)"]
    stats = service.stats()
    for line, route in zip(describe_endpoints(service), service.definition.apis, strict=True):
        s = stats.get(route)
        numbers = ""
        if s is not None:
            numbers = (
                f"  requests={s.requests} errors={s.errors} rate={s.rate_per_s:.1f}/s"
                f" p50={_ms(s.p50_ms)} p99={_ms(s.p99_ms)} mean_batch={_one_decimal(s.mean_batch_size)}"
            )
        lines.append(f"  {line}{numbers}")
    for name, why in (skipped or {}).items():
        lines.append(f"  skipped {name}() ({why})")
    return "\n".join(lines)


def show(service: RunningService, skipped: dict[str, str] | None = None) -> None:
    """Display the service's live panel under the cell: JupyterLab's Bento extension renders ``MIME_TYPE``
    (stats and Stop through the Jupyter server, so they work while other cells run); other frontends and
    the saved notebook show the plain-text summary."""
    from IPython.display import display

    data = {
        "name": service.name,
        "kernel_id": kernel_id(),
        "url": service.url,
        "port": service.server.port,
        "endpoints": [
            {"name": m.name, "route": route, "batchable": m.config.batchable}
            for route, m in service.definition.apis.items()
        ],
        "skipped": skipped or {},
    }
    display({MIME_TYPE: data, "text/plain": summary_text(service, skipped)}, raw=True)
