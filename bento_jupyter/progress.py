"""Byte progress for pushes and pulls, drawn by tqdm: a widget in a notebook, one line on a terminal."""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm


def byte_progress(verb: str, always: bool = False) -> Callable[[int, int], None]:
    """A ``progress(done_bytes, total_bytes)`` callback drawing one bar labelled ``verb``. Without ``always`` it is
    silent when stderr is not a terminal (a CLI piped into a file); a kernel passes ``always=True``."""
    bar: tqdm | None = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(
                total=total,
                desc=verb,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=None if not always else False,
            )
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update
