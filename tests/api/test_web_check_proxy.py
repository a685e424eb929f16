"""The browser check's recording proxy (tests/support/web), in front of a real `fractal-like serve`.

The browser check itself needs fractal-web's source and Chromium, so CI never runs it;
its proxy is what turns a walk into a list of refused calls, and is checked here: it
must pass every call through unchanged (status, body, cookies, chunked uploads) and keep
exactly the refused ones, with their bodies.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from ..support.helpers import ADMIN_EMAIL, ADMIN_PASSWORD
from ..support.live_server import start_server
from ..support.web.recording_proxy import RecordingProxy


@pytest.fixture
def proxy(db_url: str, tmp_path: Path) -> Iterator[RecordingProxy]:
    server = start_server(db_url, tmp_path)
    recorder = RecordingProxy(server.url).start()
    try:
        yield recorder
    finally:
        recorder.stop()
        server.stop()


def _login(client: httpx.Client) -> str:
    response = client.post(
        "/auth/token/login/", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_calls_pass_through_and_only_refusals_are_kept(proxy: RecordingProxy) -> None:
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        token = _login(client)
        cookie = {"Cookie": f"fastapiusersauth={token}"}  # as fractal-web sends it
        me = client.get("/auth/current-user/", headers=cookie)
        assert me.status_code == 200 and me.json()["email"] == ADMIN_EMAIL
        missing = client.get("/api/v2/project/987654/", headers=cookie)
        assert missing.status_code in (403, 404)
        refused = client.post("/admin/v2/resource/", json={"name": ""}, headers=cookie)
        assert refused.status_code == 422
        anonymous = client.get("/api/v2/project/")
        assert anonymous.status_code == 401
        # A path without its slash is redirected back through the proxy, the cookie kept.
        redirect = client.get("/auth/current-user", headers=cookie)
        assert redirect.status_code == 307
        assert redirect.headers["location"] == f"{proxy.url}/auth/current-user/"
        assert client.get(redirect.headers["location"], headers=cookie).status_code == 200
        logout = client.post("/auth/token/logout/", headers=cookie)
        assert logout.status_code == 200
        assert "fastapiusersauth" in logout.headers.get("set-cookie", "")

    assert proxy.calls == 8
    kept = [(call.method, call.route, call.status) for call in proxy.refused]
    assert kept == [
        ("GET", "/api/v2/project/{id}/", missing.status_code),
        ("POST", "/admin/v2/resource/", 422),
        ("GET", "/api/v2/project/", 401),
    ]
    assert proxy.refused[0].path == "/api/v2/project/987654/"
    assert proxy.refused[1].request_excerpt == '{"name":""}'
    assert '"detail"' in proxy.refused[1].response_excerpt


def test_a_chunked_body_is_forwarded_whole(proxy: RecordingProxy) -> None:
    """fractal-web's /api proxy streams request bodies (Transfer-Encoding: chunked)."""
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        token = _login(client)
    address = urlsplit(proxy.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    chunks = (
        part
        for part in (
            b'{"name": "streamed", "type": "local", ',
            b'"jobs_local_dir": "/tmp/j", "tasks_local_dir": "/tmp/t"}',
        )
    )
    connection.request(
        "POST",
        "/admin/v2/resource/",
        body=chunks,
        headers={"Content-Type": "application/json", "Cookie": f"fastapiusersauth={token}"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 201, body
    assert b'"streamed"' in body
    assert proxy.refused == []
