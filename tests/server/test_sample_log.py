"""What an API keeps of the requests it answered, for a build to replay: the latest ones within a count and a
byte budget, large requests included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bento_jupyter.server.samples import SampleLog


@given(st.lists(st.integers(0, 40), max_size=30), st.integers(1, 5), st.integers(1, 60))
def test_the_latest_exchanges_within_the_count_and_the_budget_are_kept(sizes, count, budget):
    log = SampleLog(count, budget)
    for index, size in enumerate(sizes):
        log.record(str(index).encode(), b"x" * size, b"application/json")
    kept = [int(exchange.request) for exchange in log.exchanges()]
    fitting = [i for i, size in enumerate(sizes) if size + len(str(i)) <= budget]
    expected: list[int] = []
    for i in reversed(fitting):  # the longest run of the latest fitting ones
        total = sum(sizes[j] + len(str(j)) for j in [*expected, i])
        if len(expected) == count or total > budget:
            break
        expected.append(i)
    assert kept == expected[::-1]


def test_a_request_of_a_few_mib_is_kept():
    log = SampleLog()
    body = b'{"s": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    log.record(body, b"3145728", b"application/json")
    assert [exchange.request for exchange in log.exchanges()] == [body]
