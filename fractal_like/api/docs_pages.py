"""The pages a browser opens: `/`, `/docs` (Swagger UI) and `/redoc` (ReDoc).

Their scripts and styles come from the `fastapi-offline` package and are served by
us, never from a CDN, so the pages work on a cluster without internet access. None
of these pages needs a token, and none is part of the OpenAPI schema.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__

ASSETS_URL = "/static/docs"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"

router = APIRouter(include_in_schema=False)


def install_docs_pages(app: FastAPI) -> None:
    """Serve the documentation assets and the pages; the app must be created with
    `docs_url=None, redoc_url=None` so that FastAPI's CDN-based pages stay off."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    app.include_router(router)


def _root_path(request: Request) -> str:
    # Behind a proxy that mounts us under a prefix, links must carry that prefix.
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root_path(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        # Swagger UI would otherwise send the schema to an online validator.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = _root_path(request)
    return get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )


@router.get("/")
async def home(request: Request) -> HTMLResponse:
    root = _root_path(request)
    server_url = escape(str(request.base_url).rstrip("/"))
    name = escape(request.app.title)
    return HTMLResponse(
        _HOME_PAGE.format(
            name=name,
            version=escape(__version__),
            root=escape(root),
            openapi=escape(f"{root}{request.app.openapi_url}"),
            assets=escape(f"{root}{ASSETS_URL}"),
            server_url=server_url,
        )
    )


_HOME_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{name} {version}</title>
<link rel="icon" href="{assets}/favicon.png">
<style>
body {{ font-family: sans-serif; max-width: 46em; margin: 2em auto; padding: 0 1em;
       line-height: 1.5; }}
code, pre {{ background: #f3f3f3; padding: 0 .2em; }}
pre {{ padding: .5em; overflow-x: auto; }}
</style>
</head>
<body>
<h1>{name} {version}</h1>
<p>A multi-user HPC workflow manager that speaks the Fractal v2 API, answering at
<code>{server_url}</code>.</p>

<h2>The API</h2>
<ul>
<li><a href="{root}/docs">{root}/docs</a>: the API, to read and try (Swagger UI)</li>
<li><a href="{root}/redoc">{root}/redoc</a>: the API reference (ReDoc)</li>
<li><a href="{openapi}">{openapi}</a>: the OpenAPI schema</li>
</ul>

<h2>The command-line client</h2>
<p>The <code>fractal</code> command comes from the <code>fractal-client</code> package on
PyPI; point it at this server:</p>
<pre>pip install fractal-client
export FRACTAL_SERVER={server_url} FRACTAL_USER=you@example.org FRACTAL_PASSWORD=...
fractal user whoami</pre>

<h2>The web interface</h2>
<p>This server has no web interface of its own. The Fractal project's web interface,
<b>fractal-web</b>, is a separate application (a Node.js server) that an admin installs
from its releases and starts with <code>FRACTAL_SERVER_HOST={server_url}</code>.</p>
</body>
</html>
"""
