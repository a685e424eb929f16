"""Projects under /api/v2/project/, and sharing them with other users."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import EmailStr

from ...models import LinkUserProject, Project, UserOAuth
from ...schemas._base import Id
from ...schemas.latest_job import JobWithTaskStatuses
from ...schemas.project import (
    ProjectAccessCreate,
    ProjectAccessRead,
    ProjectAccessUpdate,
    ProjectCreate,
    ProjectGuestCreate,
    ProjectGuestRead,
    ProjectGuestUpdate,
    ProjectInvitationRead,
    ProjectMemberRead,
    ProjectRead,
    ProjectUpdate,
)
from ...services import history
from ...services import projects as projects_service
from ...services.access import Need, project_for
from ...services.projects import active_jobs, name_taken, project_read
from ..deps import SessionDep
from ..ownership import ReadDataset, ReadProject, ReadWorkflow, WriteProject
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(prefix="/api/v2/project", tags=["projects"], route_class=GuardedRoute)


@router.get("/", response_model=list[ProjectRead])
async def list_projects(
    user: ApiUser, session: SessionDep, is_owner: bool = True
) -> list[ProjectRead]:
    """The projects the user owns, or (is_owner=false) those shared with them and accepted."""
    assert user.id is not None
    rows = await projects_service.projects_of(session, user.id, is_owner)
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


# Declared before /{project_id}/, which would otherwise take "invitation" for an id.
@router.get("/invitation/", response_model=list[ProjectInvitationRead])
async def list_invitations(user: ApiUser, session: SessionDep) -> list[ProjectInvitationRead]:
    """The caller's pending invitations (guest accounts cannot accept any: none shown)."""
    assert user.id is not None
    if user.is_guest:
        return []
    return await projects_service.pending_invitations(session, user.id)


@router.get("/{project_id}/", response_model=ProjectRead)
async def get_project(
    access: ReadProject, project_id: Id, user: ApiUser, session: SessionDep
) -> ProjectRead:
    project, link = access
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
async def delete_project(
    access: WriteProject, project_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    project, link = access
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


# --- Stars: personal (on the user's link), so reading rights suffice ---------------------------


async def _star(session: SessionDep, user: UserOAuth, project_id: Id, starred: bool) -> Response:
    _, link = await project_for(session, user, project_id)
    link.is_starred = starred
    await session.commit()
    return Response(status_code=status.HTTP_200_OK)


@router.post("/{project_id}/star/", status_code=status.HTTP_200_OK)
async def star_project(project_id: Id, user: ApiUser, session: SessionDep) -> Response:
    return await _star(session, user, project_id, True)


@router.post("/{project_id}/unstar/", status_code=status.HTTP_200_OK)
async def unstar_project(project_id: Id, user: ApiUser, session: SessionDep) -> Response:
    return await _star(session, user, project_id, False)


# --- The latest job of a workflow on a dataset -------------------------------------------------


# Unset counters left out: a task the job has yet to run shows its status only.
@router.get(
    "/{project_id}/latest-job/",
    response_model=JobWithTaskStatuses,
    response_model_exclude_unset=True,
)
async def latest_job(
    _workflow: ReadWorkflow,
    _dataset: ReadDataset,
    project_id: Id,
    workflow_id: Id,
    dataset_id: Id,
    user: ApiUser,
    session: SessionDep,
) -> JobWithTaskStatuses:
    job = await projects_service.latest_job(session, workflow_id, dataset_id)
    statuses = await history.workflow_statuses(session, workflow_id, dataset_id)
    data = JobWithTaskStatuses.model_validate(job)
    data.task_statuses = statuses
    return data


# --- Fractal's project sharing: the owner invites, the invited user accepts --------------------


@router.get("/{project_id}/guest/", response_model=list[ProjectGuestRead])
async def list_guests(project_id: Id, user: ApiUser, session: SessionDep) -> list[ProjectGuestRead]:
    await _owned(session, user, project_id)
    return await projects_service.guests_of(session, project_id)


@router.post("/{project_id}/guest/", status_code=status.HTTP_201_CREATED)
async def invite_guest(
    project_id: Id, email: EmailStr, payload: ProjectGuestCreate, user: ApiUser, session: SessionDep
) -> Response:
    """Invite a user: the link gives no access until they accept it."""
    await _owned(session, user, project_id)
    guest_id = (await projects_service.user_by_email(session, email)).id
    assert guest_id is not None
    if await session.get(LinkUserProject, (project_id, guest_id)) is not None:
        raise HTTPException(422, detail=f"{email} is already linked to project {project_id}")
    session.add(
        LinkUserProject(
            project_id=project_id,
            user_id=guest_id,
            is_owner=False,
            is_verified=False,
            permissions=payload.permissions,
        )
    )
    await session.commit()
    return Response(status_code=status.HTTP_201_CREATED)


async def _guest_by_email(
    session: SessionDep, user: UserOAuth, project_id: Id, email: str
) -> LinkUserProject:
    """The link of a guest of the caller's project, named by e-mail (never the owner's)."""
    await _owned(session, user, project_id)
    guest_id = (await projects_service.user_by_email(session, email)).id
    assert guest_id is not None
    if guest_id == user.id:
        raise HTTPException(422, detail="the owner's own access cannot be changed")
    return await projects_service.link_or_404(session, project_id, guest_id)


@router.patch("/{project_id}/guest/", status_code=status.HTTP_200_OK)
async def change_guest(
    project_id: Id, email: EmailStr, payload: ProjectGuestUpdate, user: ApiUser, session: SessionDep
) -> Response:
    link = await _guest_by_email(session, user, project_id, email)
    link.permissions = payload.permissions
    await session.commit()
    return Response(status_code=status.HTTP_200_OK)


@router.delete("/{project_id}/guest/", status_code=status.HTTP_204_NO_CONTENT)
async def remove_guest(
    project_id: Id, email: EmailStr, user: ApiUser, session: SessionDep
) -> Response:
    link = await _guest_by_email(session, user, project_id, email)
    await session.delete(link)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{project_id}/access/", response_model=ProjectAccessRead)
async def my_access(project_id: Id, user: ApiUser, session: SessionDep) -> ProjectAccessRead:
    assert user.id is not None
    return await projects_service.access_of(session, user.id, project_id)


@router.post("/{project_id}/access/accept/", status_code=status.HTTP_200_OK)
async def accept_invitation(project_id: Id, user: ApiUser, session: SessionDep) -> Response:
    assert user.id is not None
    link = await projects_service.link_or_404(session, project_id, user.id)
    if link.is_verified:
        raise HTTPException(404, detail=f"no pending invitation to project {project_id}")
    link.is_verified = True
    await session.commit()
    return Response(status_code=status.HTTP_200_OK)


@router.delete("/{project_id}/access/", status_code=status.HTTP_204_NO_CONTENT)
async def leave_project(project_id: Id, user: ApiUser, session: SessionDep) -> Response:
    """Decline an invitation, or stop using a project shared with you."""
    assert user.id is not None
    link = await projects_service.link_or_404(session, project_id, user.id)
    if link.is_owner:
        raise HTTPException(422, detail=f"you own project {project_id}: delete it instead")
    await session.delete(link)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- Our own sharing routes: the owner grants access at once (no invitation) -------------------


@router.post(
    "/{project_id}/access/",
    response_model=list[ProjectMemberRead],
    status_code=status.HTTP_201_CREATED,
)
async def share_project(
    project_id: Id, payload: ProjectAccessCreate, user: ApiUser, session: SessionDep
) -> list[ProjectMemberRead]:
    await _owned(session, user, project_id)
    guest = await projects_service.user_by_email(session, payload.email)
    if not guest.is_active:
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
    return await projects_service.members(session, project_id)


async def _member_link(session: SessionDep, project_id: Id, user_id: Id) -> LinkUserProject:
    link = await projects_service.link_or_404(session, project_id, user_id)
    if link.is_owner:
        raise HTTPException(422, detail="the owner's access cannot be changed")
    return link


@router.patch("/{project_id}/access/{user_id}/", response_model=list[ProjectMemberRead])
async def change_access(
    project_id: Id, user_id: Id, payload: ProjectAccessUpdate, user: ApiUser, session: SessionDep
) -> list[ProjectMemberRead]:
    await _owned(session, user, project_id)
    link = await _member_link(session, project_id, user_id)
    link.permissions = payload.permissions
    await session.commit()
    return await projects_service.members(session, project_id)


@router.delete("/{project_id}/access/{user_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_access(
    project_id: Id, user_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    # A guest may leave a project on their own; otherwise only the owner removes guests.
    if user_id != user.id:
        await _owned(session, user, project_id)
    else:
        await project_for(session, user, project_id)
    link = await _member_link(session, project_id, user_id)
    await session.delete(link)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
