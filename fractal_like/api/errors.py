"""Error responses: domain errors mapped to status codes (here, once), and 422s in
FastAPI's `detail` shape without echoing huge inputs back."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ..services.errors import (
    ConflictError,
    DomainError,
    ForbiddenError,
    InternalError,
    InvalidError,
    NotFoundError,
    TooLargeError,
    UnavailableError,
)

# The one place where a domain refusal becomes an HTTP status.
STATUS_OF: dict[type[DomainError], int] = {
    NotFoundError: 404,
    ForbiddenError: 403,
    ConflictError: 409,
    InvalidError: 422,
    TooLargeError: 413,
    UnavailableError: 503,
    InternalError: 500,
}

# An input kept as it is when it holds at most this many scalars (a short string counts as
# one); larger ones become a short repr. A 60 MB body once came back whole in a 422.
MAX_INPUT_ITEMS = 50
MAX_INPUT_CHARS = 200
# Enough to fix a request; thousands of errors (one per list item) help nobody.
MAX_ERRORS = 20

_short_repr = reprlib.Repr()
_short_repr.maxlevel = 3
_short_repr.maxlist = _short_repr.maxtuple = _short_repr.maxdict = 6
_short_repr.maxstring = _short_repr.maxother = MAX_INPUT_CHARS // 2


def _is_small(value: Any, budget: int = MAX_INPUT_ITEMS) -> bool:
    """Walk at most `budget` items: the cost never grows with the input's size."""
    pending = [value]
    while pending:
        budget -= 1
        if budget < 0:
            return False
        current = pending.pop()
        if isinstance(current, str | bytes):
            if len(current) > MAX_INPUT_CHARS:
                return False
        elif isinstance(current, Mapping):
            if len(current) > budget:
                return False
            pending.extend(current.keys())
            pending.extend(current.values())
        elif isinstance(current, Iterable):
            if not isinstance(current, list | tuple | set | frozenset):
                return False
            if len(current) > budget:
                return False
            pending.extend(current)
    return True


def compact_input(value: Any) -> Any:
    """The input itself when small, else a repr of at most MAX_INPUT_CHARS characters."""
    if _is_small(value):
        return jsonable_encoder(value)
    text = value if isinstance(value, str) else _short_repr.repr(value)
    return text if len(text) <= MAX_INPUT_CHARS else text[: MAX_INPUT_CHARS - 3] + "..."


def compact_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """At most MAX_ERRORS errors, each with its input cut down, in FastAPI's shape."""
    errors = list(errors)
    kept = []
    for error in errors[:MAX_ERRORS]:
        item = {key: value for key, value in error.items() if key not in ("input", "ctx", "url")}
        if "input" in error:
            item["input"] = compact_input(error["input"])
        if "ctx" in error:
            item["ctx"] = {key: compact_input(value) for key, value in error["ctx"].items()}
        kept.append(jsonable_encoder(item))
    if len(errors) > MAX_ERRORS:
        kept.append(
            {
                "type": "too_many_errors",
                "loc": [],
                "msg": f"{len(errors) - MAX_ERRORS} more errors not shown",
                "input": None,
            }
        )
    return kept


async def request_validation_error(_request: Request, error: Exception) -> JSONResponse:
    """The app's handler for invalid requests (FastAPI's own would echo every input)."""
    assert isinstance(error, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": compact_errors(error.errors())})


def unprocessable_from(error: ValidationError) -> HTTPException:
    """The same `detail` list FastAPI gives for a bad request body."""
    details = error.errors(include_url=False, include_context=False)
    return HTTPException(422, detail=compact_errors(details))


def status_of(error: DomainError) -> int:
    """The status of its class; a refusal of no mapped class is the client's (422)."""
    for cls, status in STATUS_OF.items():
        if isinstance(error, cls):
            return status
    return 422


async def domain_error(_request: Request, error: Exception) -> JSONResponse:
    """The app's handler for refusals raised by the services."""
    assert isinstance(error, DomainError)
    return JSONResponse(
        status_code=status_of(error), content={"detail": jsonable_encoder(error.detail)}
    )
