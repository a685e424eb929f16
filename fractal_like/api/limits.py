"""Request body limits: 413 before a body is read when its Content-Length is too large, else
as soon as the bytes read cross the limit.

Each route's limit is a setting named by its route class (see `request_body.py`):
MAX_JSON_BYTES for all but the upload routes, which take MAX_REQUEST_BYTES.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from starlette.types import Message, Receive


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        413, detail=f"the request body is larger than {limit} bytes, the limit of this route"
    )


def refuse_declared_oversize(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


def limited_receive(receive: Receive, limit: int) -> Receive:
    """`receive` that raises 413 once more than `limit` body bytes came (chunked bodies).

    FastAPI lets an HTTPException raised while it reads the body through, so the client
    gets the usual JSON 413 and the rest of the body is never read.
    """
    received = 0

    async def receive_within_limit() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(limit)
        return message

    return receive_within_limit
