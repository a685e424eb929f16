"""The route class of every router: limits and token checked before a body is read, large
JSON bodies parsed off the event loop."""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Callable, Coroutine
from typing import Any

import anyio.to_thread
from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from .limits import limited_receive, refuse_declared_oversize
from .token_precheck import has_valid_token, requires_login, unauthorized

# Smaller bodies are parsed in the loop with the C decoder (~6 ms for 256 KB of the worst
# kind: small integers); larger ones in a worker thread.
JSON_IN_THREAD_BYTES = 256 * 1024


class _YieldingDecoder(json.JSONDecoder):
    """The standard decoder with the pure-Python scanner.

    The C scanner holds the GIL for the whole document, so in a thread it would stall the
    event loop just as much (20 MB: 0.5 s); Python code lets the loop run every few ms.
    It is ~10x slower, which the body limit keeps bounded.
    """

    def __init__(self) -> None:
        super().__init__()
        # The pure-Python scanner is not in typeshed's json.scanner.
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]


def decode_json_body(body: bytes) -> Any:
    """Like `json.loads`, for the large bodies parsed in a thread."""
    text = body.decode(json.detect_encoding(body))
    try:
        return _YieldingDecoder().decode(text)
    except RecursionError:
        raise HTTPException(422, detail="the JSON body is nested too deeply") from None


class OffLoopJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) <= JSON_IN_THREAD_BYTES:
                self._json = json.loads(body)
            else:
                self._json = await anyio.to_thread.run_sync(decode_json_body, body)
        return self._json


class GuardedRoute(APIRoute):
    """Before FastAPI reads the body: a declared oversize gets 413 and a route that needs a
    user gets 401 without a token this server signed; then the body is read within the
    limit and JSON parsed off the loop."""

    # The setting that bounds this route's request bodies.
    body_limit_setting = "MAX_JSON_BYTES"

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        needs_login = requires_login(self.dependant)
        path_fields, query_fields = _path_and_query_fields(self.dependant)

        async def guarded_handler(request: Request) -> Response:
            limit: int = getattr(request.app.state.settings, self.body_limit_setting)
            refuse_declared_oversize(request, limit)
            if needs_login and not has_valid_token(request):
                return unauthorized()
            # Ids and query values are checked before any dependency runs: a project
            # dependency's 404 must not hide a workflow_id=0 in the query (422, as Fractal).
            _, path_errors = request_params_to_args(path_fields, request.path_params)
            _, query_errors = request_params_to_args(query_fields, request.query_params)
            if path_errors or query_errors:
                raise RequestValidationError([*path_errors, *query_errors])
            receive = limited_receive(request.receive, limit)
            return await handler(OffLoopJSONRequest(request.scope, receive))

        return guarded_handler


def _path_and_query_fields(dependant: Dependant) -> tuple[list[Any], list[Any]]:
    """The path and query parameters of a route and all its dependencies, once each.

    FastAPI's request_params_to_args is internal API (FastAPI 0.165); it is what FastAPI
    itself validates them with, so the errors have its exact shape."""
    path: dict[str, Any] = {}
    query: dict[str, Any] = {}
    pending = [dependant]
    while pending:
        current = pending.pop()
        path.update({field.alias: field for field in current.path_params})
        query.update({field.alias: field for field in current.query_params})
        pending.extend(current.dependencies)
    return list(path.values()), list(query.values())


class UploadRoute(GuardedRoute):
    """For the routes that take file uploads (wheels): the larger limit."""

    body_limit_setting = "MAX_REQUEST_BYTES"
