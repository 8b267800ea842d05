"""Values the bento's source writes out instead of storing: plain constants and ``TypeVar``s."""

from __future__ import annotations

import ast
import typing
from typing import Any

MAX_LITERAL_BYTES = 64 * 1024


def literal_source(value: Any) -> str | None:
    """Source for a plain constant, or None when ``value`` is not one."""
    if isinstance(value, bool | int | float | str | bytes | type(None) | tuple | list | dict | set | frozenset):
        try:  # repr itself refuses ints beyond sys.get_int_max_str_digits(): such a value is stored instead
            text = repr(value)
            if len(text) <= MAX_LITERAL_BYTES and ast.literal_eval(text) == value:
                return text
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return None


def type_variable_source(value: Any) -> str | None:
    """Source for a plain ``TypeVar`` (classes name it in their bases while the bento's source runs)."""
    if not isinstance(value, typing.TypeVar) or value.__constraints__ or value.__bound__ is not None:
        return None
    flags = f"covariant={value.__covariant__}, contravariant={value.__contravariant__}"
    return f'__import__("typing").TypeVar({value.__name__!r}, {flags})'
