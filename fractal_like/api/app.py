"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError

from .. import __version__
from ..config import Settings, get_settings
from ..db import make_async_engine, make_session_factory
from ..migrate import check_schema
from ..services.bootstrap import ensure_first_admin
from ..services.errors import DomainError
from ..services.slurm_place import close_connections
from .docs_pages import install_docs_pages
from .errors import domain_error, request_validation_error
from .request_body import GuardedRoute
from .routers import ROUTERS

logger = logging.getLogger("fractal_like")


def create_app(
    settings: Settings | None = None,
    *,
    check_migrations: bool = True,
    on_ready: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    if check_migrations:
        check_schema(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_async_engine(settings.database_url)
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.first_admin = await ensure_first_admin(app.state.session_factory, settings)
        runner_thread = None
        if settings.EMBEDDED_RUNNER:
            # The runner lives beside the API, never inside a request, in a thread with an
            # event loop of its own (imported here so that the API modules themselves never
            # import the runner).
            from ..runner.in_thread import RunnerThread

            runner_thread = RunnerThread(settings)
            runner_thread.start()
        if on_ready is not None:
            on_ready(app)
        try:
            yield
        finally:
            if runner_thread is not None:
                await anyio.to_thread.run_sync(runner_thread.stop)
            await close_connections()
            await engine.dispose()

    app = FastAPI(
        title="fractal-like",
        version=__version__,
        lifespan=lifespan,
        # Fractal's routes end with a slash; a client that leaves it off (the web page
        # asks for /api/settings/app) is redirected (307) as the reference server does.
        redirect_slashes=True,
        # Served by docs_pages from local files instead of FastAPI's CDN-based pages.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.jwt_secret = settings.jwt_secret()
    app.router.route_class = GuardedRoute

    @app.get("/api/alive/", tags=["meta"])
    async def alive() -> dict[str, object]:
        return {"alive": True, "version": __version__}

    @app.exception_handler(IntegrityError)
    async def integrity_error(_request: Request, error: IntegrityError) -> JSONResponse:
        # A race between two requests (or a missed check) must not become a 500.
        logger.info("integrity error turned into 409: %s", error.orig)
        return JSONResponse(
            status_code=409, content={"detail": "the request conflicts with existing data"}
        )

    @app.exception_handler(DataError)
    async def data_error(_request: Request, error: DataError) -> JSONResponse:
        # e.g. an id beyond the database's integer range in a path: bad input, not a crash.
        logger.info("data error turned into 422: %s", error.orig)
        return JSONResponse(
            status_code=422, content={"detail": "a value in the request is out of range"}
        )

    app.add_exception_handler(RequestValidationError, request_validation_error)
    app.add_exception_handler(DomainError, domain_error)

    for router in ROUTERS:
        app.include_router(router)
    install_docs_pages(app)
    return app
