"""Superusers' views of users under /admin/v2/: the users table as CSV, and impersonation."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime

from ...schemas._base import Id
from ...services.access import user_or_404
from ...services.users_csv import users_csv
from ..deps import SessionDep
from ..query_params import utc_bound
from ..request_body import GuardedRoute
from ..users import PasswordBoundJWTStrategy, Superuser

router = APIRouter(prefix="/admin/v2", tags=["admin"], route_class=GuardedRoute)

# An impersonation token lives two hours, as Fractal's, whatever the login lifetime is.
IMPERSONATION_SECONDS = 7200


@router.get(
    "/users-csv/",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "The users table."}},
)
async def list_users(
    _admin: Superuser,
    session: SessionDep,
    exclude_zero_jobs: bool = False,
    start_timestamp_min: AwareDatetime | None = None,
    start_timestamp_max: AwareDatetime | None = None,
) -> Response:
    text = await users_csv(
        session,
        exclude_zero_jobs,
        utc_bound(start_timestamp_min, "start_timestamp_min"),
        utc_bound(start_timestamp_max, "start_timestamp_max"),
    )
    return Response(text, media_type="text/csv", headers={"Content-Disposition": "attachment"})


@router.get("/impersonate/{user_id}/")
async def impersonate_user(
    user_id: Id, request: Request, _admin: Superuser, session: SessionDep
) -> JSONResponse:
    """A bearer token of that user, as their own login would give (but for two hours).

    It is bound to the user's password like every token of ours, so it dies when that
    password changes.
    """
    user = await user_or_404(session, user_id)
    strategy = PasswordBoundJWTStrategy(
        secret=request.app.state.jwt_secret, lifetime_seconds=IMPERSONATION_SECONDS
    )
    token = await strategy.write_token(user)
    return JSONResponse({"access_token": token, "token_type": "bearer"})
