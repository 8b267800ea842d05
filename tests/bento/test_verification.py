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
from hypothesis import given
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
