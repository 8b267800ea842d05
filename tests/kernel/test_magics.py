"""The %bento magics on a bare InteractiveShell: serving, hot swap, listing, stopping, usage errors."""

from __future__ import annotations

import logging
import math
import socket
import threading
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from bento_jupyter.server.running import services

SERVE_CELL = """
from bento_jupyter import api

@api(batchable=True, max_batch_size=8)
def predict(inputs: np.ndarray) -> np.ndarray:
    return inputs * FACTOR

@api
def describe(text: str) -> dict:
    return {"length": len(text)}

def normalize(x):
    return x

def _private_helper():
    return 1
"""


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "bento_jupyter")
    ip.run_cell("import numpy as np\nFACTOR = 2")
    yield ip
    services.stop_all()


def serve(shell, line="demo", cell=SERVE_CELL, cell_id="cell-1"):
    shell.run_cell(f"%%bento serve {line}\n{cell}", cell_id=cell_id)
    return services.get(line.split()[0])


def test_serving_cell_defines_functions_and_serves_its_api_functions_only(shell, capsys):
    service = serve(shell)
    assert service is not None and service.url.startswith("http://127.0.0.1:")
    assert set(service.definition.apis) == {"/predict", "/describe"}
    assert shell.user_ns["describe"]("abc") == {"length": 3} and shell.user_ns["normalize"](1) == 1
    answer = requests.post(f"{service.url}/predict", json={"inputs": [[1, 2]]}, timeout=5)
    assert answer.json() == [[2, 4]]
    assert requests.post(f"{service.url}/normalize", json={"x": 1}, timeout=5).status_code == 404
    out = capsys.readouterr().out
    assert f"demo serving at {service.url}" in out
    assert "POST /predict" in out and "POST /describe" in out
    assert "skipped normalize() (not decorated with @api)" in out
    assert "p50=- p99=-" in out and "-ms" not in out  # no traffic yet: no number, no unit


def test_a_cell_without_api_serves_its_public_functions(shell, capsys):
    cell = "def double(x: int) -> int:\n    return 2 * x\n\ndef _helper():\n    return 1\n"
    service = serve(shell, cell=cell)
    assert set(service.definition.apis) == {"/double"}
    assert requests.post(f"{service.url}/double", json={"x": 4}, timeout=5).json() == 8
    assert "skipped" not in capsys.readouterr().out


def test_rerunning_the_cell_hot_swaps_handlers_and_globals_on_the_same_port(shell):
    first = serve(shell)
    port = first.server.port
    shell.run_cell("FACTOR = 10")
    second = serve(shell)
    assert second is first and second.server.port == port and second.swaps == 1
    answer = requests.post(f"{second.url}/predict", json={"inputs": [[1, 2]]}, timeout=5)
    assert answer.json() == [[10, 20]]


def test_another_cell_serving_the_same_name_is_refused(shell):
    serve(shell, cell_id="cell-1")
    result = shell.run_cell(f"%%bento serve demo\n{SERVE_CELL}", cell_id="cell-2")
    assert isinstance(result.error_in_exec, UsageError)
    assert "served by another cell" in str(result.error_in_exec)


def test_list_and_stop(shell, capsys):
    service = serve(shell)
    shell.run_line_magic("bento", "list")
    assert "demo serving" in capsys.readouterr().out
    shell.run_line_magic("bento", "stop demo")
    assert not service.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{service.url}/readyz", timeout=2)
    shell.run_line_magic("bento", "list")
    assert "no services running" in capsys.readouterr().out


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_stopping_with_a_request_in_flight_answers_it_503_and_logs_no_uvicorn_cancel_line(shell):
    shell.run_cell("import threading, time\nSTARTED = threading.Event()").raise_error()
    service = serve(
        shell, "holding", "def hold(s: float) -> float:\n    STARTED.set()\n    time.sleep(s)\n    return s"
    )
    uvicorn_log = logging.getLogger("uvicorn.error")  # what the notebook would show under the stopping cell
    records = Records()
    uvicorn_log.addHandler(records)
    answers: list[requests.Response] = []
    client = threading.Thread(target=lambda: answers.append(requests.post(f"{service.url}/hold", json={"s": 8})))
    try:
        client.start()
        assert shell.user_ns["STARTED"].wait(10)  # the request reached the handler
        shell.run_line_magic("bento", "stop holding")  # past uvicorn's 5 s grace, the request is cancelled
        client.join(30)
        uvicorn_log.error("a real error still shows")
    finally:
        uvicorn_log.removeHandler(records)
    assert answers[0].status_code == 503 and answers[0].json()["code"] == "stopped"
    assert [r.getMessage() for r in records.records] == ["a real error still shows"]


def test_stop_all(shell, capsys):
    serve(shell, "one", cell_id="a")
    serve(shell, "two", cell_id="b")
    shell.run_line_magic("bento", "stop --all")
    assert "stopped one, two" in capsys.readouterr().out
    assert services.list() == []


@pytest.mark.parametrize("line", ["", "--help", "-h", "help"])
def test_bento_and_bento_help_print_every_subcommand_with_its_options(shell, capsys, line):
    shell.run_line_magic("bento", line)
    out = capsys.readouterr().out
    for usage in (
        "%%bento serve",
        "%bento list",
        "%bento build",
        "%bento push",
        "%bento pull",
        "%bento save",
        "%bento stop",
        "%bento export",
    ):
        assert usage in out
    for option in ("--port PORT", "--python-packages REQ", "--url URL", "--all", "--force"):
        assert option in out


def test_question_mark_shows_the_same_help(shell, capsys):
    shell.run_cell("%bento?")
    out = capsys.readouterr().out
    assert "%%bento serve" in out and "--port PORT" in out and "<no docstring>" not in out


def test_subcommand_help_prints_only_that_subcommand(shell, capsys):
    shell.run_line_magic("bento", "build --help")
    out = capsys.readouterr().out
    assert out.startswith("%bento build") and "--requirements" in out and "%bento push" not in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("frobnicate", "invalid choice"),
        ("serve", "the following arguments are required: name"),
        ("serve demo", "cell magic"),
        ("stop", "name a service or pass --all"),
        ("stop ghost", "no service named 'ghost'"),
        ("serve demo --port notanumber", "a port is a number 0-65535"),
    ],
)
def test_user_mistakes_are_one_line_usage_errors(shell, line, message):
    with pytest.raises(UsageError, match=message) as caught:
        shell.run_line_magic("bento", line)
    assert "\n" not in str(caught.value).strip()


def test_bad_service_name_and_taken_port_are_usage_errors(shell):
    result = shell.run_cell(f"%%bento serve Bad/Name\n{SERVE_CELL}")
    assert isinstance(result.error_in_exec, UsageError) and "invalid service name" in str(result.error_in_exec)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        result = shell.run_cell(f"%%bento serve demo --port {port}\n{SERVE_CELL}")
        assert isinstance(result.error_in_exec, UsageError)
        assert "already in use" in str(result.error_in_exec)
    finally:
        taken.close()


def test_an_error_in_the_cell_serves_nothing(shell):
    result = shell.run_cell("%%bento serve demo\ndef predict(x: int) -> int:\n    return x\nraise ValueError('boom')")
    assert isinstance(result.error_in_exec, ValueError)
    assert services.get("demo") is None


@pytest.mark.parametrize("port", ["70000", "-1", "True", "http"])
def test_a_serve_cell_refuses_a_non_port_in_one_line(shell, port):
    result = shell.run_cell(f"%%bento serve demo --port {port}\n{SERVE_CELL}")
    assert isinstance(result.error_in_exec, UsageError)
    assert str(result.error_in_exec) == f"%bento: argument --port: a port is a number 0-65535, not '{port}'"
    assert services.get("demo") is None


def test_config_traitlets_set_defaults(shell):
    magics = shell._bento_magics
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    shell.run_line_magic("config", f"BentoMagics.default_port = {port}")
    try:
        service = serve(shell)
        assert service.server.port == port == magics.default_port
    finally:
        magics.default_port = None


not_positive = st.floats(max_value=0) | st.sampled_from([math.nan, math.inf, -math.inf])
BAD_SETTINGS = {
    "max_body_mb": not_positive,
    "request_timeout": not_positive,
    "default_port": st.integers(max_value=-1) | st.integers(min_value=65536) | st.booleans(),  # a bool is an int
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(BAD_SETTINGS)).flatmap(lambda name: st.tuples(st.just(name), BAD_SETTINGS[name])))
def test_config_refuses_a_setting_no_service_could_use_at_assignment(shell, caplog, setting):
    name, value = setting
    magics = shell._bento_magics
    before = getattr(magics, name)
    caplog.clear()
    written = repr(value) if isinstance(value, bool) else f"{type(value).__name__}({str(value)!r})"
    shell.run_line_magic("config", f"BentoMagics.{name} = {written}")
    assert getattr(magics, name) == before  # unchanged, so the next serving cell is not the one to fail
    assert f"BentoMagics.{name} must be" in caplog.text and str(value) in caplog.text


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(min_value=1e-3, max_value=1e6), st.integers(0, 65535))
def test_config_takes_every_usable_setting(shell, number, port):
    magics = shell._bento_magics
    try:
        for name, value in (("max_body_mb", number), ("request_timeout", number), ("default_port", port)):
            shell.run_line_magic("config", f"BentoMagics.{name} = {value!r}")
            assert getattr(magics, name) == value
    finally:
        magics.max_body_mb, magics.request_timeout, magics.default_port = 32.0, None, None


@pytest.mark.parametrize("show_panel", [True, False])
def test_show_panel_false_hides_only_the_live_panel(shell, show_panel):
    from IPython.utils.capture import capture_output

    from bento_jupyter.kernel.panel import MIME_TYPE

    shell.run_line_magic("config", f"BentoMagics.show_panel = {show_panel}")
    try:
        with capture_output() as captured:
            service = serve(shell)
    finally:
        shell._bento_magics.show_panel = True
    shown = captured.stdout + "".join(output.data.get("text/plain", "") for output in captured.outputs)
    assert f"demo serving at {service.url}" in shown
    assert "POST /predict" in shown and "skipped normalize() (not decorated with @api)" in shown
    assert any(MIME_TYPE in output.data for output in captured.outputs) is show_panel


STREAM_AND_TASK_CELL = """
from collections.abc import Iterator
from bento_jupyter import api

@api
def words(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"w{i}"

@api(task=True)
def job(n: int) -> int:
    return n * FACTOR
"""


def test_a_cell_serves_streams_and_tasks_and_says_so(shell, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path))
    service = serve(shell, line="writer", cell=STREAM_AND_TASK_CELL)
    out = capsys.readouterr().out
    assert "POST /words  (streamed: text/event-stream, or NDJSON on request)" in out
    assert "POST /job  (unbatched; task: /job/submit, /status, /get, /cancel, /retry)" in out
    streamed = requests.post(f"{service.url}/words", json={"n": 2}, headers={"accept": "application/x-ndjson"})
    assert streamed.text == '"w0"\n"w1"\n'
    task = requests.post(f"{service.url}/job/submit", json={"n": 21}, timeout=5).json()
    assert [p.name for p in (tmp_path / "tasks").glob("writer.kernel-*.sqlite3")]  # this kernel's queue
    for _ in range(200):
        status = requests.get(f"{service.url}/job/status", params={"task_id": task["task_id"]}, timeout=5).json()
        if status["status"] == "completed":
            break
        time.sleep(0.02)
    assert requests.get(f"{service.url}/job/get", params={"task_id": task["task_id"]}, timeout=5).json() == 42


@pytest.mark.parametrize(
    ("hint", "tensor"),
    [
        ("x: list[np.ndarray]", "np.ndarray"),
        ("x: Optional[np.ndarray] = None", "np.ndarray"),
        ("x: tuple[np.ndarray, int]", "np.ndarray"),
        ("x: int) -> dict[str, torch.Tensor]:\n    return {}\ndef unused(y: int", "torch.Tensor"),
    ],
)
def test_a_tensor_inside_a_container_is_refused_in_one_line_saying_what_to_declare(shell, hint, tensor):
    cell = f"import torch\nfrom typing import Optional\ndef f({hint}):\n    return 1\n"
    result = shell.run_cell(f"%%bento serve tensors\n{cell}")
    error = result.error_in_exec
    assert isinstance(error, UsageError) and "\n" not in str(error).strip()
    assert f"declare {tensor} itself" in str(error) and "arbitrary_types_allowed" not in str(error)


def test_the_optional_tensor_the_refusal_suggests_serves(shell):
    cell = "def total(x: np.ndarray = None) -> float:\n    return -1.0 if x is None else float(x.sum())\n"
    url = serve(shell, "tensors", cell).url
    assert requests.post(f"{url}/total", json={"x": [1, 2]}, timeout=10).json() == 3.0
    assert requests.post(f"{url}/total", json={}, timeout=10).json() == -1.0
