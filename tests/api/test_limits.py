"""Request bodies: limits (413), the token checked before the body is read (401), large
JSON parsed off the event loop, and 422s that do not echo huge inputs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from fastapi_users.jwt import generate_jwt
from pydantic import BaseModel, ValidationError

from fractal_like.api.app import create_app
from fractal_like.api.errors import MAX_ERRORS, MAX_INPUT_CHARS, unprocessable_from
from fractal_like.api.request_body import JSON_IN_THREAD_BYTES, GuardedRoute, decode_json_body
from fractal_like.api.routers import ROUTERS
from fractal_like.api.token_precheck import requires_login
from fractal_like.config import Settings

from ..support.helpers import ADMIN_EMAIL, ADMIN_PASSWORD, ApiClient, expect, login

AUDIENCE = ["fastapi-users:auth"]


@pytest.fixture
def small_limit_client(settings: Settings) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"MAX_JSON_BYTES": 1000, "MAX_REQUEST_BYTES": 3000})
    with TestClient(create_app(limited)) as client:
        yield client


def _bearer(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {login(client, ADMIN_EMAIL, ADMIN_PASSWORD)}"}


def test_declared_oversized_body_is_413(small_limit_client: TestClient) -> None:
    response = small_limit_client.post(
        "/api/v2/project/", json={"name": "x" * 5000}, headers=_bearer(small_limit_client)
    )
    assert response.status_code == 413
    assert "larger than 1000 bytes" in response.json()["detail"]


def test_declared_oversized_anonymous_body_is_413_in_json(small_limit_client: TestClient) -> None:
    response = small_limit_client.post("/api/v2/project/", content=b"x" * 5000)
    assert response.status_code == 413
    assert response.json() == {
        "detail": "the request body is larger than 1000 bytes, the limit of this route"
    }


def test_streamed_oversized_body_is_413(small_limit_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 500

    form = {"content-type": "application/x-www-form-urlencoded"}
    response = small_limit_client.post("/auth/token/login/", content=chunks(), headers=form)
    assert response.status_code == 413
    assert "larger than 1000 bytes" in response.json()["detail"]


def test_small_bodies_pass(small_limit_client: TestClient) -> None:
    assert login(small_limit_client, ADMIN_EMAIL, ADMIN_PASSWORD)


def test_upload_routes_take_the_larger_limit(small_limit_client: TestClient) -> None:
    # Over MAX_JSON_BYTES, under MAX_REQUEST_BYTES: the upload route reads it (the admin
    # has no profile, hence 403 from the route itself, not 413).
    headers = _bearer(small_limit_client)
    wheel = ("pkg-1.0-py3-none-any.whl", b"w" * 2000)
    response = small_limit_client.post(
        "/api/v2/task/collect/pip/", files={"file": wheel}, headers=headers
    )
    assert response.status_code == 403, response.text
    big_wheel = ("pkg-1.0-py3-none-any.whl", b"w" * 5000)
    response = small_limit_client.post(
        "/api/v2/task/collect/pip/", files={"file": big_wheel}, headers=headers
    )
    assert response.status_code == 413
    assert "larger than 3000 bytes" in response.json()["detail"]


def test_every_route_is_guarded() -> None:
    routes = [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]
    assert len(routes) > 60
    assert [route.path for route in routes if not isinstance(route, GuardedRoute)] == []


def test_every_route_but_login_is_prechecked_for_a_token() -> None:
    # The pre-check finds the routes needing a user through their dependencies: a route
    # (or a renamed user dependency) it cannot see would read anonymous bodies again.
    open_routes = {
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and not requires_login(route.dependant)
        for method in route.methods
    }
    assert open_routes == {("POST", "/auth/token/login/")}


# --- the token is checked before the body is read: raw ASGI calls that count reads ---


def _call(settings: Settings, headers: dict[str, str], body: bytes) -> tuple[int, Any, int]:
    """POST `body` to a route needing a user; answer status, JSON body, receive() calls."""
    app = create_app(settings)
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v2/project/",
        "raw_path": b"/api/v2/project/",
        "query_string": b"",
        "root_path": "",
        "headers": [(key.lower().encode(), value.encode()) for key, value in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def main() -> None:
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    asyncio.run(main())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(payload), reads


def _token(secret: str, lifetime: int = 600, sub: str = "1") -> str:
    return generate_jwt({"sub": sub, "aud": AUDIENCE}, secret, lifetime)


BODY = json.dumps({"name": "p"}).encode()
JSON = {"content-type": "application/json", "content-length": str(len(BODY))}


@pytest.mark.parametrize(
    "auth",
    ["none", "forged", "expired", "not-bearer"],
)
def test_no_valid_token_is_401_before_the_body_is_read(settings: Settings, auth: str) -> None:
    secret = settings.jwt_secret()
    headers = {
        "none": {},
        "forged": {"Authorization": f"Bearer {_token('another-secret-' + 'z' * 40)}"},
        "expired": {"Authorization": f"Bearer {_token(secret, lifetime=-10)}"},
        "not-bearer": {"Authorization": f"Basic {_token(secret)}"},
    }[auth]
    status, payload, reads = _call(settings, {**JSON, **headers}, BODY)
    assert (status, payload, reads) == (401, {"detail": "Unauthorized"}, 0)


def test_a_valid_bearer_token_lets_the_body_be_read(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        token = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    headers = {**JSON, "Authorization": f"Bearer {token}"}
    status, _payload, reads = _call(settings, headers, BODY)
    assert reads >= 1
    assert status != 401


def test_a_valid_cookie_token_passes_the_precheck(settings: Settings) -> None:
    # The full check (dependencies) decides what the cookie is worth; the pre-check only
    # must not refuse it before the body.
    headers = {**JSON, "Cookie": f"fastapiusersauth={_token(settings.jwt_secret())}"}
    _status, _payload, reads = _call(settings, headers, BODY)
    assert reads >= 1


# --- large JSON bodies, parsed in a thread ---


@pytest.mark.parametrize(
    "document",
    [
        {"a": [1, 2.5, -3e10, None, True, False, 'é\u2603\n"', {"b": {}}], "c": []},
        [0] * 10,
        "text",
        12,
    ],
)
def test_the_thread_decoder_reads_what_json_loads_reads(document: Any) -> None:
    for encoding in ("utf-8", "utf-16", "utf-32"):
        body = json.dumps(document, ensure_ascii=False).encode(encoding)
        assert decode_json_body(body) == json.loads(body)
    with pytest.raises(json.JSONDecodeError):
        decode_json_body(b'{"a": [1, 2}')


def test_a_large_json_body_is_parsed(api: ApiClient) -> None:
    user = api.new_user()
    # Blank space is valid JSON: a body above the threshold with a small document.
    body = b'{"name": "big", "description": "d"}' + b" " * (JSON_IN_THREAD_BYTES + 1000)
    project = expect(
        user.post("/api/v2/project/", content=body, headers={"content-type": "application/json"}),
        201,
    )
    assert project["name"] == "big"
    bad = user.post(
        "/api/v2/project/",
        content=b'{"name": "x", "pad": [' + b"1," * 200_000,
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["type"] == "json_invalid"


def test_deep_large_json_is_4xx(api: ApiClient) -> None:
    user = api.new_user()
    body = b"[" * 100_000 + b"]" * 100_000 + b" " * JSON_IN_THREAD_BYTES
    response = user.post(
        "/api/v2/project/", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500


# --- 422s that do not echo huge inputs ---


def test_422_does_not_echo_a_huge_input(api: ApiClient) -> None:
    user = api.new_user()
    response = user.post("/api/v2/project/", json={"name": "p", "pad": [1] * 500_000})
    assert response.status_code == 422
    assert len(response.content) < 2000
    (error,) = response.json()["detail"]
    assert set(error) >= {"type", "loc", "msg", "input"}
    assert error["loc"] == ["body", "pad"]
    assert isinstance(error["input"], str) and len(error["input"]) <= MAX_INPUT_CHARS
    assert error["input"].startswith("[1, 1, 1")


def test_422_keeps_small_inputs_as_they_are(api: ApiClient) -> None:
    user = api.new_user()
    response = user.post("/api/v2/project/", json={"name": "p", "pad": {"a": [1, 2]}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["input"] == {"a": [1, 2]}


def test_422_lists_a_bounded_number_of_errors(api: ApiClient) -> None:
    response = api.admin.post(
        f"/auth/users/{api.admin.id}/set-groups/", json={"group_ids": ["x"] * 1000}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == MAX_ERRORS + 1
    assert all(item["loc"][:2] == ["body", "group_ids"] for item in detail[:MAX_ERRORS])
    assert detail[-1]["type"] == "too_many_errors"
    assert detail[-1]["msg"] == f"{1000 - MAX_ERRORS} more errors not shown"


def test_unprocessable_from_cuts_inputs_and_errors() -> None:
    class Model(BaseModel):
        values: list[int]

    with pytest.raises(ValidationError) as caught:
        Model.model_validate({"values": ["x" * 10_000] * 100})
    error = unprocessable_from(caught.value)
    assert error.status_code == 422
    assert len(error.detail) == MAX_ERRORS + 1
    assert all(len(item["input"]) <= MAX_INPUT_CHARS for item in error.detail[:MAX_ERRORS])
