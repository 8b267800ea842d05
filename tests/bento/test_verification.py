"""Build-time self-verification: a bento replays the service's sampled requests (and @api examples) in a
fresh process and is stored only when it answers as the kernel did; ``bento-jupyter verify`` and
``serve --verify`` replay them later."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from bento_jupyter.bento.local_store import Store
from bento_jupyter.server.replay import difference
from bento_jupyter.server.running import services
from tests.integration.bento_process import served_bento

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_any_answer_matches_itself(value):
    assert difference(value, json.loads(json.dumps(value)), 0.0) is None


@given(st.floats(-1e6, 1e6), st.floats(1e-9, 1e-3))
def test_numbers_match_within_the_tolerance_and_differ_beyond_it(number, tolerance):
    assert difference([number], [number + tolerance / 2], tolerance) is None
    far = number + 10 * tolerance * max(1.0, abs(number))
    found = difference({"y": [number]}, {"y": [far]}, tolerance)
    assert found is not None and found.startswith("$.y[0]:")


def test_types_keys_and_lengths_are_compared_exactly():
    assert difference(True, 1, 1.0) is not None
    assert difference({"a": 1}, {"b": 1}, 0) is not None
    assert difference([1, 2], [1], 0) == "$: the kernel answered 2 items, the bento 1"
    assert difference(1, 1.0, 0) is None and difference(math.nan, math.nan, 0) is None


SERVE = """%%bento serve {name}
from bento_jupyter import api

@api(examples=[{{"v": [0.5]}}])
def scale(v: list) -> list:
    return [x * GAIN for x in v]

@api(verify=False)
def noisy(n: int) -> float:
    return random.random() * n
"""


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTO_JUPYTER_HOME", str(tmp_path / "home"))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "bento_jupyter")
    ip.run_cell("import random\nGAIN = 1.25").raise_error()
    yield ip
    services.stop_all()


def serve_and_call(shell, name: str) -> str:
    shell.run_cell(SERVE.format(name=name), cell_id=f"serve-{name}").raise_error()
    url = services.get(name).url
    for v in ([1, 2], [3.5], []):
        assert requests.post(f"{url}/scale", json={"v": v}, timeout=10).status_code == 200
    requests.post(f"{url}/noisy", json={"n": 3}, timeout=10).raise_for_status()
    return url


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bento_jupyter.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_a_build_replays_served_requests_and_examples_in_a_fresh_process(shell, capsys):
    serve_and_call(shell, "ok")
    shell.run_line_magic("bento", "build ok")
    assert "verified: 4 sample(s) answered as the kernel did" in capsys.readouterr().out
    manifest = Store("bentos").manifest("ok:1")
    assert manifest.document["verification"] == {"state": "passed", "replayed": 4, "opted_out": ["noisy"]}
    assert {a.name: a.verify for a in manifest.apis} == {"scale": True, "noisy": False}
    samples = json.loads((Store("bentos").resolve("ok:1").path / "verify" / "samples.json").read_text())
    assert {e["source"] for e in samples["apis"]["scale"]["exchanges"]} == {"example", "served"}
    assert samples["apis"]["noisy"]["exchanges"] == []
    done = cli("verify", "ok:1")
    assert done.returncode == 0 and "verified: 4 sample(s)" in done.stdout
    with served_bento("ok:1", "--verify") as url:
        assert requests.post(f"{url}/scale", json={"v": [2]}, timeout=10).json() == [2.5]


def test_a_deliberately_broken_capture_is_caught_and_nothing_is_stored(shell, monkeypatch):
    serve_and_call(shell, "broken")
    from bento_jupyter.capture import slicer

    literal = slicer.literal_source
    monkeypatch.setattr(slicer, "literal_source", lambda value: "2.5" if value == 1.25 else literal(value))
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic("bento", "build broken")
    message = str(caught.value)
    assert "the bento was not stored: 3 of 4 sample(s) answered differently" in message
    assert "scale sample 0 (example): $[0]: the kernel answered 0.625, the bento 1.25" in message
    assert Store("bentos").list("broken") == []
    # stored anyway on request: the verifier still refuses it later, and so does the entrypoint's --verify
    shell.run_line_magic("bento", "build broken --no-verify")
    done = cli("verify", "broken:1")
    assert done.returncode == 1 and "the kernel answered 0.625, the bento 1.25" in done.stdout
    serve = cli("serve", "broken:1", "--verify", "--port", "1")
    assert serve.returncode == 1 and "answered differently" in serve.stderr


def test_a_bento_that_cannot_load_fails_the_build_with_one_line(shell, tmp_path, monkeypatch):
    (tmp_path / "localmod.py").write_text("def shout(s):\n    return s.upper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    shell.run_cell("import localmod").raise_error()
    shell.run_cell(
        "%%bento serve local\ndef up(s: str) -> str:\n    return localmod.shout(s)", cell_id="serve-local"
    ).raise_error()
    monkeypatch.setenv("PYTHONPATH", ":".join(p for p in sys.path if p != str(tmp_path)))
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic("bento", "build local")
    message = str(caught.value)
    assert "does not load" in message and "localmod" in message and "\n" not in message


def test_every_differing_path_of_an_answer_is_listed_up_to_ten():
    kernel = {"s": 2, "o": 11, "mat": "matrix", "same": [1, 2]}
    found = difference(kernel, {"s": 3, "o": 1001, "mat": "ndarray", "same": [1, 2]}, 1e-6)
    assert found is not None and [line.split(":")[0].strip() for line in found.splitlines()] == ["$.s", "$.o", "$.mat"]
    many = difference(list(range(30)), [v + 1 for v in range(30)], 0)
    assert many is not None and len(many.splitlines()) == 11 and "$[9]:" in many and "$[10]:" not in many
    assert "more paths differ" in many.splitlines()[-1]


VALUES_SERVE = """%%bento serve values
import numpy as np
import torch
from bento_jupyter import api

@api
def number(v: float) -> float:
    return v

@api
def floats(xs: list[float]) -> list[float]:
    return xs

@api
def array(x: np.ndarray) -> np.ndarray:
    return x * 2

@api
def tensor(x: torch.Tensor) -> torch.Tensor:
    return x * 2

@api
def whole(n: int) -> int:
    return n + 1

@api
def echo(v):
    return v
"""

any_float = st.floats()  # NaN and ±Infinity included: requests may send the bare tokens
big_int = st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
any_json = st.recursive(
    st.none() | st.booleans() | big_int | any_float | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
matrix = st.integers(1, 3).flatmap(lambda n: st.lists(st.lists(any_float, min_size=n, max_size=n), max_size=3))
ARGUMENTS = {
    "number": ("v", any_float),
    "floats": ("xs", st.lists(any_float, max_size=5)),
    "array": ("x", st.lists(any_float, min_size=1, max_size=5) | matrix),
    "tensor": ("x", st.lists(any_float, min_size=1, max_size=5)),
    "whole": ("n", big_int),
    "echo": ("v", any_json),
}


def body_of(name: str, values: st.SearchStrategy) -> st.SearchStrategy[str]:
    """A request body as a client writes it: NaN and ±Infinity as bare tokens, unicode escaped or not."""
    return st.builds(lambda value, ascii: json.dumps({name: value}, ensure_ascii=ascii), values, st.booleans())


request_bodies = st.fixed_dictionaries(
    {api: st.lists(body_of(name, values), min_size=1, max_size=3) for api, (name, values) in ARGUMENTS.items()}
)


def test_every_request_the_kernel_answered_replays_byte_for_byte_against_the_bento(shell, capsys):
    """Bodies with bare NaN/±Infinity, integers beyond 64 bits, unicode and nesting: what the kernel's server
    answered 200 is stored as sent, replayed as sent, and the bento's answer compares equal."""
    shell.run_cell(VALUES_SERVE, cell_id="serve-values").raise_error()
    url = services.get("values").url
    sent: dict[str, set[str]] = {api: set() for api in ARGUMENTS}

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(request_bodies)
    def ask(bodies: dict[str, list[str]]) -> None:
        for api, asked in bodies.items():
            for body in asked:
                answer = requests.post(f"{url}/{api}", data=body.encode(), timeout=30)
                assert answer.status_code == 200, (api, body, answer.text)
                sent[api].add(body)

    ask()  # the service keeps the latest 16 answered requests per API; one build replays them all
    capsys.readouterr()
    shell.run_line_magic("bento", "build values")
    assert "verified:" in capsys.readouterr().out
    samples = json.loads((Store("bentos").resolve("values:1").path / "verify/samples.json").read_text())
    for api in ARGUMENTS:
        stored = {exchange["body"] for exchange in samples["apis"][api]["exchanges"]}
        assert stored and stored <= sent[api]  # the bodies as sent, not re-encoded


def test_a_handler_that_prints_while_replayed_does_not_break_the_build(shell, capsys):
    """The fresh process writes its report on stdout; what the bento's own code prints there goes elsewhere."""
    shell.run_cell(
        '%%bento serve chatty\nfrom bento_jupyter import api\n@api\ndef say(n: int) -> int:\n    print("n is", n)\n'
        "    return n",
        cell_id="serve-chatty",
    ).raise_error()
    assert requests.post(f"{services.get('chatty').url}/say", json={"n": 2}, timeout=10).json() == 2
    capsys.readouterr()
    shell.run_line_magic("bento", "build chatty")
    assert "verified: 1 sample(s)" in capsys.readouterr().out


beyond_float_precision = st.integers(min_value=2**53) | st.integers(max_value=-(2**53))


@given(beyond_float_precision, st.integers(1, 10**6), st.sampled_from([0, 1e-9]))
def test_integers_beyond_a_floats_precision_are_compared_exactly(n, gap, tolerance):
    assert difference({"n": n}, {"n": n}, tolerance) is None
    assert difference({"n": n * 2**64}, {"n": n * 2**64 + gap}, 0) is not None
    assert difference([n**40], [float(n)], tolerance) is not None  # beyond a float's range: no OverflowError


def test_requests_of_a_few_mib_are_kept_and_replayed(shell, capsys):
    shell.run_cell(
        "%%bento serve large\nfrom bento_jupyter import api\n@api\ndef n(s: str) -> int:\n    return len(s)",
        cell_id="serve-large",
    ).raise_error()
    url = services.get("large").url
    for letter in "ab":
        text = letter * (3 * 1024 * 1024 // 2)
        assert requests.post(f"{url}/n", json={"s": text}, timeout=30).json() == len(text)
    capsys.readouterr()
    shell.run_line_magic("bento", "build large")
    assert "verified: 2 sample(s) answered as the kernel did" in capsys.readouterr().out


def test_an_api_whose_requests_were_all_too_large_to_keep_says_why_it_is_not_verified(shell, capsys):
    shell.run_cell(
        "%%bento serve huge\nfrom bento_jupyter import api\n@api\ndef n(s: str) -> int:\n    return len(s)",
        cell_id="serve-huge",
    ).raise_error()
    text = "a" * (9 * 1024 * 1024)
    assert requests.post(f"{services.get('huge').url}/n", json={"s": text}, timeout=30).json() == len(text)
    capsys.readouterr()
    shell.run_line_magic("bento", "build huge")
    out = capsys.readouterr().out
    assert "NOT VERIFIED: no answered request to replay (n)" in out
    assert "a request and its answer over 8 MiB together are not kept as a sample" in out


ROUTES_CELL = """%%bento serve routes
import numpy as np
from bento_jupyter import api

@api(task=True)
def total(v: list[float]) -> float:
    return sum(v) * GAIN

@api
def doubled(x: np.ndarray) -> np.ndarray:
    return (x * 2).astype(np.float16)  # float16 answers are written in float16's shortest form, binary or not
"""


def test_answers_given_only_by_task_and_v2_routes_are_replayed_by_the_build(shell, capsys):
    """Every route that answers an API's request keeps its exchange for the build: a task (/submit, /get), v2
    infer in JSON and in Triton's binary framing (tritonclient's default) — not only the API's own route."""
    import numpy as np
    import tritonclient.http as triton

    from tests.server.test_tasks import wait_for

    shell.run_cell(ROUTES_CELL, cell_id="serve-routes").raise_error()
    url = services.get("routes").url
    task_id = requests.post(f"{url}/total/submit", json={"v": [1, 2.5]}, timeout=10).json()["task_id"]
    wait_for(f"{url}/total", task_id, "completed")
    assert requests.get(f"{url}/total/get", params={"task_id": task_id}, timeout=10).json() == 4.375
    with triton.InferenceServerClient(url=url.removeprefix("http://")) as client:
        for binary in (False, True):
            tensor = triton.InferInput("x", [2, 2], "FP32")
            tensor.set_data_from_numpy(np.array([[0.1, 2], [3, 4 + binary]], np.float32), binary_data=binary)
            output = triton.InferRequestedOutput("output", binary_data=binary)
            assert client.infer("doubled", [tensor], outputs=[output]).as_numpy("output")[0, 0] == np.float16(0.2)
    capsys.readouterr()
    shell.run_line_magic("bento", "build routes")
    out = capsys.readouterr().out
    assert "verified: 3 sample(s) answered as the kernel did" in out and "NOT VERIFIED" not in out
    samples = json.loads((Store("bentos").resolve("routes:1").path / "verify" / "samples.json").read_text())
    paths = [e.get("path") for e in samples["apis"]["doubled"]["exchanges"]]
    assert paths == ["/v2/models/doubled/infer"] * 2
