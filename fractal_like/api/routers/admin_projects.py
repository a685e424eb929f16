"""Every user's projects and project links under /admin/v2/ (superusers only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ...schemas._base import Id, Text
from ...schemas.admin import LinkUserProjectRead, ProjectReadSuperuser
from ...schemas.history import Page
from ...services import admin_projects as service
from ..deps import SessionDep
from ..query_params import PaginationDep
from ..request_body import GuardedRoute
from ..users import Superuser

router = APIRouter(prefix="/admin/v2", tags=["admin"], route_class=GuardedRoute)

NameQuery = Annotated[Text | None, Query(max_length=255)]


@router.get("/project/", response_model=Page[ProjectReadSuperuser])
async def view_projects(
    _admin: Superuser,
    session: SessionDep,
    pages: PaginationDep,
    project_id: Id | None = None,
    name: NameQuery = None,
    user_email: Annotated[Text | None, Query(max_length=320)] = None,
) -> Page[ProjectReadSuperuser]:
    filters = service.ProjectFilters(project_id=project_id, name=name, user_email=user_email)
    total, size, items = await service.list_projects(session, filters, pages.page, pages.page_size)
    return Page[ProjectReadSuperuser](
        current_page=pages.page, page_size=size, total_count=total, items=items
    )


@router.patch("/project/{project_id}/")
async def transfer_project_ownership(
    project_id: Id, user_id: Id, _admin: Superuser, session: SessionDep
) -> Response:
    """Give the project to another user (Fractal's answer: 200, no body)."""
    await service.transfer_ownership(session, project_id, user_id)
    return Response(status_code=200)


@router.get("/linkuserproject/", response_model=Page[LinkUserProjectRead])
async def view_link_user_project(
    _admin: Superuser,
    session: SessionDep,
    pages: PaginationDep,
    user_id: Id | None = None,
    project_id: Id | None = None,
    project_name: NameQuery = None,
    is_owner: bool | None = None,
    is_verified: bool | None = None,
) -> Page[LinkUserProjectRead]:
    filters = service.LinkFilters(
        user_id=user_id,
        project_id=project_id,
        project_name=project_name,
        is_owner=is_owner,
        is_verified=is_verified,
    )
    total, size, items = await service.list_links(session, filters, pages.page, pages.page_size)
    return Page[LinkUserProjectRead](
        current_page=pages.page, page_size=size, total_count=total, items=items
    )


@router.post("/linkuserproject/verify/")
async def verify_invitation_for_guest(
    guest_user_id: Id, project_id: Id, _admin: Superuser, session: SessionDep
) -> Response:
    """Accept a guest's read-only invitation for them (200, no body, as Fractal)."""
    await service.verify_guest_invitation(session, guest_user_id, project_id)
    return Response(status_code=200)
