"""The layer picture of ARCHITECTURE.md, enforced: import-linter's contracts (pyproject.toml) and no import cycle,
counting imports inside functions and under ``if TYPE_CHECKING`` as the arrows they are."""

from __future__ import annotations

from pathlib import Path

import grimp
from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parent.parent


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("bento_jupyter", exclude_type_checking_imports=False, cache_dir=None)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle_and_only_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set(), "c": {"b"}}) == []


def test_the_import_graph_counts_imports_inside_functions():
    # open_blob_store imports the S3 backend inside the function (boto3 only when asked for): still an arrow.
    graph = _graph()
    assert graph.direct_import_exists(
        importer="bento_jupyter.registry.storage", imported="bento_jupyter.registry.storage.s3"
    )


def test_import_linter_contracts_are_kept():
    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_no_module_and_no_package_imports_itself_through_others():
    graph = _graph()
    modules = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert _cycles(modules) == []
    packages: dict[str, set[str]] = {}
    for importer, imported in modules.items():
        for package in {".".join(importer.split(".")[:i]) for i in range(2, importer.count(".") + 1)}:
            packages.setdefault(package, set()).update(
                ".".join(m.split(".")[:n]) for m in imported for n in range(2, m.count(".") + 1)
            )
    for package, imported in packages.items():
        imported.discard(package)
        imported -= {p for p in imported if p.startswith(package + ".") or package.startswith(p + ".")}
    assert _cycles(packages) == []
