"""``oci://`` references: what parses round-trips, anything else is one OCIError naming the problem."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bento_jupyter.oci.reference import OCIError, OCIReference

component = st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)*", fullmatch=True).filter(lambda c: len(c) <= 30)
host = st.one_of(
    st.sampled_from(["localhost", "127.0.0.1", "registry.example", "ghcr.io"]),
    st.tuples(st.sampled_from(["127.0.0.1", "registry.example"]), st.integers(1, 65535)).map(
        lambda t: f"{t[0]}:{t[1]}"
    ),
)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,40}", fullmatch=True)
digest = st.binary(min_size=32, max_size=32).map(lambda b: "sha256:" + b.hex())


@settings(max_examples=300, deadline=None)
@given(host, st.lists(component, min_size=1, max_size=4), st.none() | tag, st.none() | digest)
def test_valid_references_round_trip(host, path, tag, digest):
    text = f"oci://{host}/{'/'.join(path)}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = OCIReference.parse(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, "/".join(path), tag, digest)
    assert str(ref) == text and OCIReference.parse(str(ref)) == ref


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_anything_else_parses_or_is_one_oci_error(text):
    for candidate in (text, "oci://" + text):
        try:
            ref = OCIReference.parse(candidate)
        except OCIError as exc:
            assert "invalid" in str(exc)
        else:
            assert OCIReference.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("docker://host/repo:1", "write oci://HOST"),
        ("oci://host", "needs a registry host and a repository"),
        ("oci://host/Repo:1", "invalid repository 'Repo'"),
        ("oci://host/repo:bad tag", "invalid tag"),
        ("oci://host/repo@sha256:abc", "invalid digest"),
    ],
)
def test_bad_references_name_the_bad_part(text, message):
    with pytest.raises(OCIError, match=message):
        OCIReference.parse(text)
