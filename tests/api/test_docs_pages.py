"""`/`, `/docs` and `/redoc`: public, and everything they load comes from this server."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from fractal_like import __version__

PAGES = ["/", "/docs", "/redoc"]
# What a browser loads from these pages: src/href attributes, Swagger's `url: '...'` and
# ReDoc's `spec-url="..."`.
REFERENCE = re.compile(r"""(?:\b(?:src|href|spec-url)=|\burl:\s*)["']([^"']+)["']""")
ANY_URL = re.compile(r"""https?://[^\s"'<>]+""")
EXPECTED_TYPES = {
    ".js": "javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


def _references(html: str) -> set[str]:
    return {ref for ref in REFERENCE.findall(html) if not ref.startswith("#")}


def test_pages_load_nothing_from_another_host(app_client: TestClient) -> None:
    fetched: set[str] = set()
    for page in PAGES:
        response = app_client.get(page)  # no token: these pages are public
        assert response.status_code == 200, page
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        foreign = [url for url in ANY_URL.findall(html) if not url.startswith("http://testserver")]
        assert foreign == [], f"{page} names another host: {foreign}"
        references = _references(html)
        assert references, f"{page} references nothing"
        for ref in sorted(references - fetched):
            assert ref.startswith("/"), f"{page}: {ref} is not on this server"
            asset = app_client.get(ref)
            assert asset.status_code == 200, f"{page}: {ref} gave {asset.status_code}"
            assert len(asset.content) > 0, ref
            suffix = "." + ref.rsplit(".", 1)[-1] if "." in ref.rsplit("/", 1)[-1] else ""
            if suffix in EXPECTED_TYPES:
                assert EXPECTED_TYPES[suffix] in asset.headers["content-type"], ref
            fetched.add(ref)
    # Both viewers load their own script and the schema; Swagger UI its style too.
    assert {
        "/openapi.json",
        "/static/docs/swagger-ui-bundle.js",
        "/static/docs/swagger-ui.css",
        "/static/docs/redoc.standalone.js",
    } <= fetched


def test_home_page_names_the_server_and_where_clients_come_from(app_client: TestClient) -> None:
    html = app_client.get("/").text
    assert f"fractal-like {__version__}" in html
    for link in ('href="/docs"', 'href="/redoc"', 'href="/openapi.json"'):
        assert link in html
    assert "pip install fractal-client" in html
    assert "FRACTAL_SERVER=http://testserver" in html
    assert "fractal-web" in html and "FRACTAL_SERVER_HOST=http://testserver" in html


def test_pages_stay_out_of_the_schema(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]
    assert not {"/", "/docs", "/redoc"} & set(paths)
    assert not [path for path in paths if path.startswith("/static")]


def test_missing_asset_is_a_404(app_client: TestClient) -> None:
    assert app_client.get("/static/docs/nothing-here.js").status_code == 404
    assert app_client.get("/static/docs/").status_code == 404  # no folder listing
