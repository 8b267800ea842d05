"""References to stored bentos and models, parsed here and nowhere else: ``NAME``, ``NAME:N``, ``NAME:latest``
and ``NAME@ALIAS`` (an alias lives in a registry). Every mistake raises :class:`InvalidReference`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bento_jupyter.errors import InvalidReference

NAME_PATTERN = re.compile(r"[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?")  # always fullmatch: '$' allows a newline
VERSION_PATTERN = re.compile(r"[0-9]{1,10}")  # ASCII digits only: a superscript or Arabic-Indic digit is refused
MAX_VERSION = 2**31 - 1  # registry versions are INTEGER columns (32-bit on PostgreSQL)
RESERVED_LABELS = frozenset({"latest"})
_FORMS = "use NAME, NAME:N, NAME:latest or NAME@ALIAS"


def check_name(name: Any) -> str:
    """A bento or model name: safe as a path segment anywhere (lowercase letters, digits, ``._-``, max 64)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidReference(f"invalid name {name!r}: use lowercase letters, digits, '.', '_' or '-' (max 64)")
    return name


def check_label(label: Any, what: str = "alias") -> str:
    """An alias or tag: the name pattern, but never a number or ``latest`` (those are versions)."""
    if not isinstance(label, str) or not NAME_PATTERN.fullmatch(label) or label.isdigit() or label in RESERVED_LABELS:
        raise InvalidReference(
            f"invalid {what} {label!r}: use lowercase letters, digits, '.', '_' or '-' (max 64), "
            "not only digits, not 'latest'"
        )
    return label


def check_version(value: Any, what: str = "version") -> int:
    """A version number: an integer from 1 to 2**31 - 1. A JSON number with no fractional part (``3.0``) is an
    integer, as JSON Schema counts them."""
    if isinstance(value, float) and value.is_integer() and 1 <= value <= MAX_VERSION:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise InvalidReference(f"invalid {what} {value!r}: expected an integer from 1 to {MAX_VERSION}")
    return value


def parse_version(text: Any, what: str = "version") -> int:
    """A version written as text (a URL segment, a query, after ``NAME:``): ASCII digits only."""
    if not isinstance(text, str) or not VERSION_PATTERN.fullmatch(text):
        raise InvalidReference(f"invalid {what} {text!r}: use a number from 1 to {MAX_VERSION} (ASCII digits)")
    return check_version(int(text), what)


def version_or_latest(text: str) -> int | None:
    """``N`` or ``latest`` (None) as a URL segment names a version."""
    return None if text == "latest" else parse_version(text)


@dataclass(frozen=True)
class Reference:
    """``NAME`` (the latest version), ``NAME:N``, ``NAME:latest`` or ``NAME@ALIAS``."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: Any) -> Reference:
        """The reference ``text`` writes; InvalidReference names what is wrong with it."""
        if not isinstance(text, str):
            raise InvalidReference(f"invalid reference {text!r}: {_FORMS}")
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(check_name(name), alias=check_label(alias))
        name, _, version = text.partition(":")
        check_name(name)
        if version in ("", "latest"):
            return cls(name)
        if not VERSION_PATTERN.fullmatch(version):
            raise InvalidReference(f"invalid reference {text!r}: {_FORMS}")
        return cls(name, version=check_version(int(version)))

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        return f"{self.name}:{self.version}" if self.version else f"{self.name}:latest"
