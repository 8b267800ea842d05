"""One reference parser: ``NAME``, ``NAME:N``, ``NAME:latest``, ``NAME@ALIAS``, the same everywhere, one error type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bento_jupyter.bento.local_store import Store
from bento_jupyter.errors import InvalidReference
from bento_jupyter.refs import MAX_VERSION, NAME_PATTERN, Reference
from tests.bento.test_manifest_and_store import make_bento

names = st.from_regex(NAME_PATTERN, fullmatch=True)
labels = names.filter(lambda s: not s.isdigit() and s != "latest")
references = st.one_of(
    st.builds(Reference, names),
    st.builds(Reference, names, version=st.integers(1, MAX_VERSION)),
    st.builds(Reference, names, alias=labels),
)


@given(references)
def test_every_reference_reads_back_from_what_it_writes(ref):
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris", Reference("iris")),
        ("iris:latest", Reference("iris")),
        ("iris:3", Reference("iris", version=3)),
        ("iris@production", Reference("iris", alias="production")),
    ],
)
def test_the_four_forms(text, expected):
    assert Reference.parse(text) == expected


BAD = ["", "Iris", "iris:0", "iris:-1", "iris:1.0", "iris:\u00b2", f"iris:{MAX_VERSION + 1}", "iris@"]
BAD += ["iris@1", "iris@latest", "../etc:1", "iris:1:2", "iris@a@b", "a" * 65]


@pytest.mark.parametrize("text", BAD)
def test_a_malformed_reference_is_one_error_type_everywhere(text, tmp_path):
    with pytest.raises(InvalidReference) as parsed:
        Reference.parse(text)
    store = Store("bentos", tmp_path)
    store.add("iris", make_bento)
    with pytest.raises(InvalidReference) as resolved:
        store.resolve(text)
    assert str(resolved.value) == str(parsed.value)


def test_the_local_store_refuses_an_alias_naming_the_registry(tmp_path):
    store = Store("bentos", tmp_path)
    store.add("iris", make_bento)
    with pytest.raises(InvalidReference, match="aliases live in a registry"):
        store.resolve("iris@production")
