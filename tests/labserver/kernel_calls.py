"""Talk to a live kernel the way JupyterLab and the Bento panel do: cells carry their notebook cell id,
and the panel's questions are silent requests whose ``user_expressions`` call ``kernel_inventory``."""

from __future__ import annotations

import time
from typing import Any

from jupyter_client.blocking import BlockingKernelClient

INVENTORY = "__import__('bento_jupyter.kernel.inventory').kernel.inventory"


class KernelError(AssertionError):
    """A cell raised: its error name and value."""


def _request(client: BlockingKernelClient, content: dict[str, Any], metadata: dict[str, Any]) -> str:
    message = client.session.msg("execute_request", content, metadata=metadata)
    client.shell_channel.send(message)
    return message["header"]["msg_id"]


def _reply(client: BlockingKernelClient, msg_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        reply = client.get_shell_msg(timeout=max(deadline - time.monotonic(), 0.1))
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


def run_cell(client: BlockingKernelClient, source: str, cell_id: str | None = None, timeout: float = 120) -> str:
    """Execute ``source`` as notebook cell ``cell_id``; return what it printed, raise KernelError if it failed."""
    content = {"code": source, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False}
    msg_id = _request(client, content, {"cellId": cell_id} if cell_id else {})
    printed: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        message = client.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.1))
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, body = message["msg_type"], message["content"]
        if kind == "stream":
            printed.append(body["text"])
        elif kind in ("execute_result", "display_data"):
            printed.append(body["data"].get("text/plain", ""))
        elif kind == "status" and body["execution_state"] == "idle":
            break
    reply = _reply(client, msg_id, timeout)
    if reply["status"] != "ok":
        raise KernelError(f"{reply.get('ename')}: {reply.get('evalue')}\n{''.join(printed)}")
    return "".join(printed)


def inventory(client: BlockingKernelClient, call: str, timeout: float = 120) -> dict[str, Any]:
    """Evaluate ``kernel_inventory.<call>`` exactly as the panel does; return its JSON."""
    content = {
        "code": "",
        "silent": True,
        "store_history": False,
        "user_expressions": {"bento": f"{INVENTORY}.{call}"},
        "allow_stdin": False,
    }
    reply = _reply(client, _request(client, content, {}), timeout)
    answer = reply["user_expressions"]["bento"]
    if answer["status"] != "ok":
        raise KernelError(f"{answer.get('ename')}: {answer.get('evalue')}")
    return answer["data"]["application/json"]


# A task API that runs for the seconds asked, unless cancelled (it polls cancel_requested); its cell imports
# time, api and cancel_requested.
LONG_JOB = """\
@api(task=True)
def long_job(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cancel_requested():
            return "stopped"
        time.sleep(0.02)
    return "finished"
"""
# A task service whose one job is LONG_JOB.
JOBS_CELL = (
    """\
%%bento serve jobs
import time
from bento_jupyter import api, cancel_requested

"""
    + LONG_JOB
)
