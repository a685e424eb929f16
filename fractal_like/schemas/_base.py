"""Building blocks for request and response schemas.

Everything a request stores must be readable again by every later request: PostgreSQL
refuses NUL characters and lone surrogates in text and JSON, and JSON nested a few hundred
levels deep is stored but then breaks the serialisers (a 500 on every read of that row).
So every request model checks every value it holds (`RequestModel`), every JSON field is
bounded in depth and size (`JsonDict`, `check_json`), and every id is a PostgreSQL integer.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StringConstraints,
    field_validator,
)

# PostgreSQL's `integer`: the range of every id column, and of counts and indexes.
MAX_INT = 2**31 - 1
# An id in a path, a query or a body: 1..2^31-1, otherwise 422 (never an overflow later).
Id = Annotated[int, Field(ge=1, le=MAX_INT)]
# A 1-based page number, and a 0-based position (e.g. first_task_index).
PageNumber = Annotated[int, Field(ge=1, le=MAX_INT)]
Index = Annotated[int, Field(ge=0, le=MAX_INT)]

# JSON fields: deep enough for any JSON schema of task arguments, far below the depth
# at which the serialisers give up; about 1 MB of JSON text each.
MAX_JSON_DEPTH = 64
MAX_JSON_BYTES = 1_000_000
# Top-level keys of one JSON object field, so one request cannot store megabytes of keys.
MAX_JSON_KEYS = 1000

# What no stored string may hold: NUL (PostgreSQL refuses it) and lone UTF-16 surrogates
# (not encodable as UTF-8, so neither storable nor sendable).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(value: str) -> bool:
    # Fast paths first: isascii() is O(1) in CPython, `in` a memchr.
    return "\x00" in value or (not value.isascii() and _UNSTORABLE.search(value) is not None)


def check_text(value: str, where: str = "") -> str:
    """A string that every database stores and every client can read back."""
    found = _UNSTORABLE.search(value)
    if found is not None:
        what = "a NUL character" if found.group() == "\x00" else "an unpaired surrogate"
        place = f" ({where})" if where else ""
        raise ValueError(f"text cannot contain {what}{place}")
    return value


def _at(top: object) -> str:
    return "top level" if top is None else f"under [{top!r}]"


def check_json(value: Any, max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Refuse JSON too deep, too large, or holding what cannot be stored; return it as is.

    An iterative walk (no recursion limit to hit); the size is the length of the JSON
    text, estimated as it goes so that an oversized value stops the walk early. Errors
    name the top-level key they are under (a full path would cost a tuple per node).
    Pydantic models inside the value (already validated by themselves) are skipped.
    """
    size = 0
    stack: list[tuple[Any, int, object]] = [(value, 0, None)]
    while stack:
        item, depth, top = stack.pop()
        if isinstance(item, str):
            if _unstorable(item):
                check_text(item, _at(top))
            size += len(item) + 2
        elif isinstance(item, dict):
            if depth >= max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels ({_at(top)})")
            size += 2
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ValueError(f"JSON object keys must be strings ({_at(top)})")
                if _unstorable(key):
                    check_text(key, _at(top))
                size += len(key) + 4
                stack.append((child, depth + 1, key if depth == 0 else top))
        elif isinstance(item, (list, tuple)):
            if depth >= max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels ({_at(top)})")
            size += 2
            for index, child in enumerate(item):
                stack.append((child, depth + 1, index if depth == 0 else top))
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"JSON numbers must be finite, not {item} ({_at(top)})")
        else:
            size += 8  # a number, true/false/null, or a model checked by itself
        if size > max_bytes:
            raise ValueError(f"JSON larger than {max_bytes} bytes")
    return value


def _bounded_dict(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_JSON_KEYS:
        raise ValueError(f"at most {MAX_JSON_KEYS} keys are allowed")
    return check_json(value)


# A JSON object field (task meta and arguments, schemas, configurations, filters, ...).
JsonDict = Annotated[dict[str, Any], AfterValidator(_bounded_dict)]

# Strings in request bodies: trimmed, never empty, never oversized.
NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
# Any text that may be stored or compared with stored text (e.g. a query parameter).
Text = Annotated[str, AfterValidator(check_text)]
# Descriptions: the columns hold 4096 characters (PostgreSQL refuses more).
LongStr = Annotated[str, StringConstraints(max_length=4096)]
PathStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096)]

# Keys of image attributes and types: no quotes, backslashes or control characters, so they
# can be used as JSON paths on every database.
JsonKey = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r'^[^"\\\x00-\x1f]+$')
]
TypeFilters = Annotated[dict[JsonKey, StrictBool], AfterValidator(_bounded_dict)]

# Timestamps always leave the server as ISO-8601 with an explicit UTC offset.
UTCTimestamp = Annotated[
    datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str)
]


def omittable(**constraints: Any) -> Any:
    """A field of a partial update that may be left out but not sent as null.

    For what cannot be cleared (a name, a list, a command): the type has no null, so
    `null` gets a 422 naming the field, rather than being stored and breaking later reads.
    """
    return Field(default=None, **constraints)


class RequestModel(BaseModel):
    """Any model read from a request: no value in it that could be stored but not read back.

    Every field is checked whatever its type (strings for NUL, containers as bounded
    JSON), so a field added later is covered without anyone remembering to.
    """

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return check_json(value)


class StrictModel(RequestModel):
    """A request body: unknown fields are refused, as Fractal does."""

    model_config = ConfigDict(extra="forbid")


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)
