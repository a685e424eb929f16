"""Building blocks for request and response schemas."""

from __future__ import annotations

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
)

# Strings in request bodies: trimmed, never empty, never oversized.
NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
LongStr = Annotated[str, StringConstraints(max_length=8192)]
PathStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4096)]

# JSON payloads of tasks: bounded in keys, so one request cannot store megabytes of junk.
MAX_JSON_KEYS = 1000


def _bounded_dict(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_JSON_KEYS:
        raise ValueError(f"at most {MAX_JSON_KEYS} keys are allowed")
    return value


JsonDict = Annotated[dict[str, Any], AfterValidator(_bounded_dict)]
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


class StrictModel(BaseModel):
    """A request body: unknown fields are refused, as Fractal does."""

    model_config = ConfigDict(extra="forbid")


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def positive_id() -> Any:
    return Field(gt=0, le=2**31 - 1)
