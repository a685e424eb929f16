"""The server's configuration under /api/settings/ (superusers only, secrets masked)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...services import settings_view
from ..request_body import GuardedRoute
from ..users import Superuser

router = APIRouter(prefix="/api/settings", tags=["settings"], route_class=GuardedRoute)


@router.get("/app/")
async def view_settings(request: Request, _admin: Superuser) -> dict[str, Any]:
    return settings_view.app_settings(request.app.state.settings)


@router.get("/database/")
async def view_db_settings(request: Request, _admin: Superuser) -> dict[str, Any]:
    return settings_view.database_settings(request.app.state.settings)


@router.get("/email/")
async def view_email_settings(request: Request, _admin: Superuser) -> dict[str, Any]:
    return settings_view.email_settings(request.app.state.settings)


@router.get("/oauth/")
async def view_oauth_settings(request: Request, _admin: Superuser) -> dict[str, Any]:
    return settings_view.oauth_settings(request.app.state.settings)
