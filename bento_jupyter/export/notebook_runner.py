"""Execute notebooks in a real kernel the way JupyterLab does: each request carries its cell id."""

from __future__ import annotations

from typing import Any

from nbclient import NotebookClient
from nbclient.util import run_sync


class CellIdNotebookClient(NotebookClient):
    """An nbclient that sends ``metadata.cellId`` with every execute request, like JupyterLab.

    Services are keyed by the cell that defines them; without the id, re-running a cell could
    not be told apart from a new cell serving the same name.
    """

    _cell_id: str | None = None

    async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
        self._cell_id = cell.get("id")
        return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

    async def async_start_new_kernel_client(self) -> Any:
        client = await super().async_start_new_kernel_client()
        send_execute = client.execute

        def execute_with_cell_id(code: str, **options: Any) -> str:
            if self._cell_id is None:
                return send_execute(code, **options)
            content = {
                "code": code,
                "silent": options.get("silent", False),
                "store_history": options.get("store_history", True),
                "user_expressions": options.get("user_expressions") or {},
                "allow_stdin": options.get("allow_stdin", False),
                "stop_on_error": options.get("stop_on_error", True),
            }
            msg = client.session.msg("execute_request", content, metadata={"cellId": self._cell_id})
            client.shell_channel.send(msg)
            return msg["header"]["msg_id"]

        client.execute = execute_with_cell_id  # type: ignore[method-assign,assignment]  # adds the cell id
        return client

    # nbclient binds its sync twins to the base class's coroutines: rebind them to ours.
    execute_cell = run_sync(async_execute_cell)
    start_new_kernel_client = run_sync(async_start_new_kernel_client)
