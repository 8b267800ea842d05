"""Parameter parsing and injection, and output directories written whole or not at all."""

from __future__ import annotations

import nbformat
import pytest

from bento_jupyter.atomic import staged_directory
from bento_jupyter.errors import ExportError
from bento_jupyter.export.parameters import collect_parameters, inject_parameters, parse_value


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("0.5", 0.5), ("True", True), ("[1, 2]", [1, 2]), ("hello", "hello"), ("'3'", "3"), ("None", None)],
)
def test_values_read_as_literals_else_text(text, value):
    assert parse_value(text) == value


def test_command_line_values_override_the_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("a: 1\nb: two\n")
    assert collect_parameters([("a", "5")], path) == {"a": 5, "b": "two"}
    path.write_text("- not a mapping\n")
    with pytest.raises(ExportError, match="mapping"):
        collect_parameters([], path)


def notebook():
    cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("y = x"), nbformat.v4.new_code_cell("z")]
    cells[0].metadata["tags"] = ["parameters"]
    return nbformat.v4.new_notebook(cells=cells)


def test_overrides_go_right_after_the_parameters_cell_and_replace_an_earlier_injection():
    nb = notebook()
    inject_parameters(nb, {"x": 2})
    inject_parameters(nb, {"x": 3, "name": "a'b"})
    assert [c.source.splitlines()[-1] for c in nb.cells] == ["x = 1", 'name = "a\'b"', "y = x", "z"]
    assert nb.cells[1].metadata["tags"] == ["injected-parameters"]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"import os; x": 1}, "invalid parameter name"),
        ({"class": 1}, "invalid parameter name"),
        ({"x": object()}, "literal"),
    ],
)
def test_names_and_values_that_are_not_plain_are_refused(parameters, message):
    with pytest.raises(ExportError, match=message):
        inject_parameters(notebook(), parameters)


def test_a_staged_directory_appears_whole_on_success(tmp_path):
    with staged_directory(tmp_path / "out") as work:
        (work / "a").write_text("1")
        assert not (tmp_path / "out").exists()
    assert (tmp_path / "out" / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failed_block_leaves_nothing_and_a_non_empty_target_needs_force(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_directory(out) as work:
        (work / "half").write_text("written")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "old").write_text("old")
    with pytest.raises(ExportError, match="--force"), staged_directory(out):
        pass
    with staged_directory(out, force=True) as work:
        (work / "new").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_yaml_parameters_file_keeps_dates_as_text_like_papermill(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("run_date: 2024-01-31\nstamp: 2024-01-31T10:00:00\nrate: 0.5\nlabels: [a, b]\n")
    parameters = collect_parameters([], path)
    assert parameters == {"run_date": "2024-01-31", "stamp": "2024-01-31T10:00:00", "rate": 0.5, "labels": ["a", "b"]}
    nb = notebook()
    inject_parameters(nb, parameters)
    namespace: dict = {}
    exec(nb.cells[1].source, namespace)
    assert namespace["run_date"] == "2024-01-31" and namespace["labels"] == ["a", "b"]
