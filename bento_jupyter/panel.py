"""The live output of a ``%%bento serve`` cell: an ipywidgets panel, or plain text outside Jupyter."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

from bento_jupyter.server.services import RunningService

REFRESH_S = 1.0


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


def summary_text(service: RunningService, skipped: dict[str, str] | None = None) -> str:
    """The plain-text panel: URL, endpoints and live numbers, then the cell's functions that are not endpoints."""
    state = "serving" if service.running else "stopped"
    lines = [f"{service.name} {state} at {service.url}  (docs: {service.url}/)"]
    stats = service.stats()
    for line, route in zip(describe_endpoints(service), service.definition.apis, strict=True):
        s = stats.get(route)
        numbers = ""
        if s is not None:
            p50 = f"{s.p50_ms:.1f}" if s.p50_ms is not None else "-"
            p99 = f"{s.p99_ms:.1f}" if s.p99_ms is not None else "-"
            batch = f"{s.mean_batch_size:.1f}" if s.mean_batch_size is not None else "-"
            numbers = (
                f"  requests={s.requests} errors={s.errors} rate={s.rate_per_s:.1f}/s"
                f" p50={p50}ms p99={p99}ms mean_batch={batch}"
            )
        lines.append(f"  {line}{numbers}")
    for name, why in (skipped or {}).items():
        lines.append(f"  skipped {name}() ({why})")
    return "\n".join(lines)


def _in_widget_frontend(shell: Any) -> bool:
    return type(shell).__name__ == "ZMQInteractiveShell"


class ServicePanel:
    """URL, endpoints, live stats and a Stop button, refreshed every second while the service runs."""

    _live: dict[str, ServicePanel] = {}

    def __init__(self, service: RunningService, on_stop: Any, skipped: dict[str, str] | None = None) -> None:
        import ipywidgets as widgets

        self.service = service
        self.skipped = skipped or {}
        self._text = widgets.HTML()
        self._stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop")
        self._stop_button.on_click(lambda _: on_stop(service.name))
        self.widget = widgets.VBox([self._text, self._stop_button])
        self._closed = threading.Event()
        previous = ServicePanel._live.get(service.name)
        if previous is not None:
            previous.close()
        ServicePanel._live[service.name] = self
        self.refresh()
        threading.Thread(target=self._refresh_loop, name="bento-panel", daemon=True).start()

    def refresh(self) -> None:
        self._text.value = f"<pre>{html.escape(summary_text(self.service, self.skipped))}</pre>"
        self._stop_button.disabled = not self.service.running

    def _refresh_loop(self) -> None:
        while not self._closed.wait(REFRESH_S):
            self.refresh()
            if not self.service.running:
                self.close()

    def close(self) -> None:
        self._closed.set()


def show(service: RunningService, shell: Any, on_stop: Any, skipped: dict[str, str] | None = None) -> None:
    """Display the service's panel in the notebook, or print its summary in a terminal."""
    if _in_widget_frontend(shell):
        from IPython.display import display

        display(ServicePanel(service, on_stop, skipped).widget)
    else:
        print(summary_text(service, skipped))


def progress_bar(verb: str, shell: Any) -> Callable[[int, int], None]:
    """A ``progress(done_bytes, total_bytes)`` callback: a widget in Jupyter, a line elsewhere."""
    if not _in_widget_frontend(shell):
        return lambda done, total: print(f"\r{verb} {done}/{total} bytes", end="\n" if done >= total else "")
    import ipywidgets as widgets
    from IPython.display import display

    bar = widgets.IntProgress(description=verb, min=0, max=1)
    display(bar)

    def update(done: int, total: int) -> None:
        bar.max = max(total, 1)
        bar.value = done

    return update
