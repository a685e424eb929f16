"""Properties of every route at once: authentication required, garbage never gives a 500."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from ..support.helpers import ApiClient

PUBLIC = {("GET", "/api/alive/"), ("POST", "/auth/token/login/")}
GARBAGE_BODIES = [None, "not json", {"unexpected": "field", "name": 12345}, ["x" * 10_000]]


def _routes(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    routes = []
    for path, operations in spec["paths"].items():
        for method in operations:
            routes.append((method.upper(), path))
    return sorted(routes)


def _fill(path: str, value: str = "1") -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def test_every_path_ends_with_a_slash(app_client: TestClient) -> None:
    routes = _routes(app_client)
    assert len(routes) > 60
    assert [path for _, path in routes if not path.endswith("/")] == []


def test_a_path_without_its_slash_is_redirected(api: ApiClient) -> None:
    """As the reference does (fractal-web asks for /api/settings/app and
    /api/v2/task-group/{id} without the slash): 307, so the method and body are kept."""
    admin = api.admin
    for path, query in (("/api/settings/app", ""), ("/admin/v2/job", "?page=1&page_size=2")):
        response = admin.get(path + query, follow_redirects=False)
        assert response.status_code == 307, (path, response.status_code)
        assert response.headers["location"].endswith(f"{path}/{query}")
        assert admin.get(path + query).status_code == 200
    login = api.client.post(
        "/auth/token/login",
        data={"username": "nobody@example.org", "password": "x"},
        follow_redirects=False,
    )
    assert login.status_code == 307
    assert admin.get("/api/no-such-route", follow_redirects=False).status_code == 404


def test_every_route_needs_a_token(app_client: TestClient) -> None:
    for method, path in _routes(app_client):
        if (method, path) in PUBLIC:
            continue
        response = app_client.request(method, _fill(path))
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"


@pytest.mark.parametrize("who", ["admin", "user"])
def test_garbage_never_gives_a_server_error(api: ApiClient, who: str) -> None:
    client = api.admin if who == "admin" else api.new_user()
    for method, path in _routes(api.client):
        if method == "GET" or (method, path) in PUBLIC:
            continue
        for value in ("1", "abc", "99999999999"):
            for body in GARBAGE_BODIES:
                kwargs = {"content": body} if isinstance(body, str) else {"json": body}
                response = client.request(method, _fill(path, value), **kwargs)
                assert response.status_code < 500, (
                    f"{method} {_fill(path, value)} {body!r}: {response.status_code} "
                    f"{response.text[:300]}"
                )


def test_reads_of_missing_objects_never_give_a_server_error(api: ApiClient) -> None:
    user = api.new_user()
    for method, path in _routes(api.client):
        if method != "GET" or (method, path) in PUBLIC:
            continue
        for value in ("1", "999999", "abc", "0", "99999999999"):
            response = user.get(_fill(path, value))
            assert response.status_code < 500, f"GET {_fill(path, value)}: {response.text[:300]}"
