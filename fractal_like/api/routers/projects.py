"""Projects under /api/v2/project/, and sharing them with other users."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from sqlmodel import col, func, select

from ...models import LinkUserProject, Project, UserOAuth
from ...schemas._base import Id
from ...schemas.project import (
    ProjectAccessCreate,
    ProjectAccessRead,
    ProjectAccessUpdate,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
)
from ...services.access import Need, project_for, readable_projects
from ...services.projects import active_jobs, name_taken, project_read
from ..deps import SessionDep
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(prefix="/api/v2/project", tags=["projects"], route_class=GuardedRoute)


@router.get("/", response_model=list[ProjectRead])
async def list_projects(user: ApiUser, session: SessionDep) -> list[ProjectRead]:
    assert user.id is not None
    rows = (await session.exec(readable_projects(user.id).order_by(col(Project.id)))).all()
    return [project_read(project, link) for project, link in rows]


@router.post("/", response_model=ProjectRead, status_code=status.HTTP_201_CREATED)
async def create_project(payload: ProjectCreate, user: ApiUser, session: SessionDep) -> ProjectRead:
    assert user.id is not None
    if await name_taken(session, user.id, payload.name, exclude=None):
        raise HTTPException(422, detail=f"you already have a project named {payload.name!r}")
    project = Project(**payload.model_dump())
    session.add(project)
    await session.flush()
    assert project.id is not None
    link = LinkUserProject(project_id=project.id, user_id=user.id, is_owner=True, permissions="rwx")
    session.add(link)
    await session.commit()
    return project_read(project, link)


@router.get("/{project_id}/", response_model=ProjectRead)
async def get_project(project_id: Id, user: ApiUser, session: SessionDep) -> ProjectRead:
    project, link = await project_for(session, user, project_id)
    return project_read(project, link)


@router.patch("/{project_id}/", response_model=ProjectRead)
async def update_project(
    project_id: Id, payload: ProjectUpdate, user: ApiUser, session: SessionDep
) -> ProjectRead:
    changes = payload.model_dump(exclude_unset=True)
    # Starring is personal: reading rights suffice for it.
    need = Need.WRITE if set(changes) - {"is_starred"} else Need.READ
    project, link = await project_for(session, user, project_id, need)
    if "is_starred" in changes:
        link.is_starred = bool(changes.pop("is_starred"))
    if changes.get("name") is not None and changes["name"] != project.name:
        assert user.id is not None
        if await name_taken(session, user.id, changes["name"], exclude=project_id):
            raise HTTPException(422, detail=f"you already have a project named {changes['name']!r}")
    for key, value in changes.items():
        if key == "name" and value is None:
            raise HTTPException(422, detail="a project's name cannot be null")
        setattr(project, key, value)
    await session.commit()
    return project_read(project, link)


@router.delete("/{project_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(project_id: Id, user: ApiUser, session: SessionDep) -> Response:
    project, link = await project_for(session, user, project_id, Need.WRITE)
    if not link.is_owner:
        raise HTTPException(403, detail="only the owner can delete a project")
    running = await active_jobs(session, project_id=project_id)
    if running:
        raise HTTPException(
            422, detail=f"project {project_id} has {running} job(s) still running: stop them first"
        )
    await session.delete(project)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _owned(session: SessionDep, user: UserOAuth, project_id: Id) -> Project:
    project, link = await project_for(session, user, project_id)
    if not link.is_owner:
        raise HTTPException(403, detail="only the owner manages who can use a project")
    return project


async def _access_list(session: SessionDep, project_id: Id) -> list[ProjectAccessRead]:
    rows = await session.exec(
        select(LinkUserProject, UserOAuth.email)
        .join(UserOAuth, col(UserOAuth.id) == LinkUserProject.user_id)
        .where(LinkUserProject.project_id == project_id)
        .order_by(col(LinkUserProject.user_id))
    )
    return [
        ProjectAccessRead(
            user_id=link.user_id, email=email, is_owner=link.is_owner, permissions=link.permissions
        )
        for link, email in rows.all()
    ]


@router.get("/{project_id}/access/", response_model=list[ProjectAccessRead])
async def list_access(
    project_id: Id, user: ApiUser, session: SessionDep
) -> list[ProjectAccessRead]:
    await _owned(session, user, project_id)
    return await _access_list(session, project_id)


@router.post(
    "/{project_id}/access/",
    response_model=list[ProjectAccessRead],
    status_code=status.HTTP_201_CREATED,
)
async def share_project(
    project_id: Id, payload: ProjectAccessCreate, user: ApiUser, session: SessionDep
) -> list[ProjectAccessRead]:
    await _owned(session, user, project_id)
    guest = (
        await session.exec(
            select(UserOAuth).where(func.lower(UserOAuth.email) == payload.email.lower())
        )
    ).first()
    if guest is None or not guest.is_active:
        raise HTTPException(404, detail=f"no active user with e-mail {payload.email}")
    assert guest.id is not None
    if await session.get(LinkUserProject, (project_id, guest.id)) is not None:
        raise HTTPException(422, detail=f"{payload.email} already has access to this project")
    session.add(
        LinkUserProject(
            project_id=project_id, user_id=guest.id, is_owner=False, permissions=payload.permissions
        )
    )
    await session.commit()
    return await _access_list(session, project_id)


async def _guest_link(session: SessionDep, project_id: Id, user_id: Id) -> LinkUserProject:
    link = await session.get(LinkUserProject, (project_id, user_id))
    if link is None:
        raise HTTPException(404, detail=f"user {user_id} has no access to project {project_id}")
    if link.is_owner:
        raise HTTPException(422, detail="the owner's access cannot be changed")
    return link


@router.patch("/{project_id}/access/{user_id}/", response_model=list[ProjectAccessRead])
async def change_access(
    project_id: Id, user_id: Id, payload: ProjectAccessUpdate, user: ApiUser, session: SessionDep
) -> list[ProjectAccessRead]:
    await _owned(session, user, project_id)
    link = await _guest_link(session, project_id, user_id)
    link.permissions = payload.permissions
    await session.commit()
    return await _access_list(session, project_id)


@router.delete("/{project_id}/access/{user_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_access(
    project_id: Id, user_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    # A guest may leave a project on their own; otherwise only the owner removes guests.
    if user_id != user.id:
        await _owned(session, user, project_id)
    else:
        await project_for(session, user, project_id)
    link = await _guest_link(session, project_id, user_id)
    await session.delete(link)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
