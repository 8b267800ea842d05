"""How a stream's items are framed on the wire, chosen by the request's ``Accept`` (and BentoML's client).

``Accept`` is negotiated with its q-values by Werkzeug's parser (RFC 9110, section 12.5.1): the most specific
media range that matches an offer gives its quality, the best quality wins, a tie goes to the more specific
range and then to the server's order (SSE, NDJSON, JSON). No ``Accept`` (or one with no valid entry) means
anything; one that accepts none of them (or each only with q=0) is a 406.
"""

from __future__ import annotations

import enum
import functools
import re

from starlette.types import Scope
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from bento_jupyter.server import asgi_io
from bento_jupyter.server.http_errors import NotAcceptable
from bento_jupyter.service.schema import NDJSON_MEDIA_TYPE, SSE_MEDIA_TYPE

JSON_MEDIA_TYPE = "application/json"
# BentoML's client reads a stream chunk by chunk, one item per chunk, with no framing (as BentoML serves it).
_BENTOML_CLIENT = b"bentoml http client/"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A range may name the charset we send; any other parameter makes it a range that none of our types match.
_UTF8_PARAMETER = re.compile(r"\s*;\s*charset\s*=\s*\"?utf-8\"?\s*$", re.IGNORECASE)


class StreamFormat(enum.Enum):
    """One framing of a stream's items."""

    SSE = "sse"  # one Server-Sent Event per item
    NDJSON = "ndjson"  # one JSON value per line
    JSON = "json"  # one JSON array of every item, sent once the generator is exhausted
    BENTOML = "bentoml"  # BentoML's own framing: the item's bytes alone, under an event-stream media type

    @property
    def media_type(self) -> str:
        if self is StreamFormat.NDJSON:
            return NDJSON_MEDIA_TYPE
        return JSON_MEDIA_TYPE if self is StreamFormat.JSON else SSE_MEDIA_TYPE

    @classmethod
    def negotiate(cls, scope: Scope) -> StreamFormat:
        """The framing the request's ``Accept`` prefers (see the module); NotAcceptable (406) when it takes none.

        BentoML's client (known by its ``User-Agent``) gets BentoML's framing unless it names a media type."""
        best, named = _preferred(asgi_io.header(scope, b"accept"))
        if best is None:
            raise NotAcceptable(
                f"this stream is sent as {', '.join(MEDIA_TYPES)} (UTF-8); the request's Accept takes none of them",
                field="accept",
            )
        if not named and asgi_io.header(scope, b"user-agent").lower().startswith(_BENTOML_CLIENT):
            return cls.BENTOML
        return best


@functools.lru_cache(maxsize=512)  # clients send the same few headers; parsing one costs tens of microseconds
def _preferred(header: bytes) -> tuple[StreamFormat | None, bool]:
    """(the framing an ``Accept`` header prefers or None, whether it names one of our media types)."""
    parsed = parse_accept_header(header.decode("latin-1"), MIMEAccept)
    accept = MIMEAccept([(_UTF8_PARAMETER.sub("", value), quality) for value, quality in parsed] or [("*/*", 1)])
    best = accept.best_match(list(MEDIA_TYPES))
    named = any(value.split(";", 1)[0].strip().lower() in MEDIA_TYPES for value, _ in accept)
    return (None if best is None else MEDIA_TYPES[best]), named


# What a stream can be sent as (in UTF-8), in the server's order of preference.
MEDIA_TYPES = {
    SSE_MEDIA_TYPE: StreamFormat.SSE,
    NDJSON_MEDIA_TYPE: StreamFormat.NDJSON,
    "application/jsonl": StreamFormat.NDJSON,
    "application/json-lines": StreamFormat.NDJSON,
    JSON_MEDIA_TYPE: StreamFormat.JSON,
}


def sse_event(data: str, event: str | None = None, event_id: int | None = None) -> bytes:
    """One event in the framing of the HTML standard's ``text/event-stream``: a ``data:`` line per line of data."""
    fields = [] if event is None else [f"event: {event}"]
    if event_id is not None:
        fields.append(f"id: {event_id}")
    fields.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(fields) + "\n\n").encode()
