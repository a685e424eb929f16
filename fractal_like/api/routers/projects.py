"""Projects under /api/v2/project/, and sharing them with other users."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import EmailStr

from ...models import LinkUserProject, Project
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
from ...services.access import Need, check_need
from ...services.errors import InvalidError, NotFoundError
from ...services.projects import active_jobs, check_name_free, project_read
from ..deps import SessionDep
from ..ownership import (
    DeleteProject,
    OwnProject,
    ReadDataset,
    ReadProject,
    ReadWorkflow,
    UnlinkMember,
)
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
    await check_name_free(session, user.id, payload.name)
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
    access: ReadProject, project_id: Id, payload: ProjectUpdate, user: ApiUser, session: SessionDep
) -> ProjectRead:
    project, link = access
    changes = payload.model_dump(exclude_unset=True)
    # Starring is personal: reading rights suffice for it; any other change needs writing.
    if set(changes) - {"is_starred"}:
        check_need(link, Need.WRITE)
    if "is_starred" in changes:
        link.is_starred = bool(changes.pop("is_starred"))
    if changes.get("name") is not None and changes["name"] != project.name:
        assert user.id is not None
        await check_name_free(session, user.id, changes["name"], exclude=project_id)
    for key, value in changes.items():
        if key == "name" and value is None:
            raise InvalidError("a project's name cannot be null")
        setattr(project, key, value)
    await session.commit()
    return project_read(project, link)


@router.delete("/{project_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(
    access: DeleteProject, project_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    running = await active_jobs(session, project_id=project_id)
    if running:
        raise InvalidError(
            f"project {project_id} has {running} job(s) still running: stop them first"
        )
    await session.delete(access.project)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- Stars: personal (on the user's link), so reading rights suffice ---------------------------


async def _star(session: SessionDep, link: LinkUserProject, starred: bool) -> Response:
    link.is_starred = starred
    await session.commit()
    return Response(status_code=status.HTTP_200_OK)


@router.post("/{project_id}/star/", status_code=status.HTTP_200_OK)
async def star_project(
    access: ReadProject, project_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    return await _star(session, access.link, True)


@router.post("/{project_id}/unstar/", status_code=status.HTTP_200_OK)
async def unstar_project(
    access: ReadProject, project_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    return await _star(session, access.link, False)


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
async def list_guests(
    _access: OwnProject, project_id: Id, user: ApiUser, session: SessionDep
) -> list[ProjectGuestRead]:
    return await projects_service.guests_of(session, project_id)


@router.post("/{project_id}/guest/", status_code=status.HTTP_201_CREATED)
async def invite_guest(
    _access: OwnProject,
    project_id: Id,
    email: EmailStr,
    payload: ProjectGuestCreate,
    user: ApiUser,
    session: SessionDep,
) -> Response:
    """Invite a user: the link gives no access until they accept it."""
    guest_id = (await projects_service.user_by_email(session, email)).id
    assert guest_id is not None
    link = LinkUserProject(
        project_id=project_id,
        user_id=guest_id,
        is_owner=False,
        is_verified=False,
        permissions=payload.permissions,
    )
    await projects_service.add_link(
        session, link, already=f"{email} is already linked to project {project_id}"
    )
    await session.commit()
    return Response(status_code=status.HTTP_201_CREATED)


@router.patch("/{project_id}/guest/", status_code=status.HTTP_200_OK)
async def change_guest(
    _access: OwnProject,
    project_id: Id,
    email: EmailStr,
    payload: ProjectGuestUpdate,
    user: ApiUser,
    session: SessionDep,
) -> Response:
    assert user.id is not None
    link = await projects_service.guest_by_email(session, project_id, user.id, email)
    link.permissions = payload.permissions
    await session.commit()
    return Response(status_code=status.HTTP_200_OK)


@router.delete("/{project_id}/guest/", status_code=status.HTTP_204_NO_CONTENT)
async def remove_guest(
    _access: OwnProject, project_id: Id, email: EmailStr, user: ApiUser, session: SessionDep
) -> Response:
    assert user.id is not None
    link = await projects_service.guest_by_email(session, project_id, user.id, email)
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
    await projects_service.accept_invitation(session, project_id, user.id)
    await session.commit()
    return Response(status_code=status.HTTP_200_OK)


@router.delete("/{project_id}/access/", status_code=status.HTTP_204_NO_CONTENT)
async def leave_project(project_id: Id, user: ApiUser, session: SessionDep) -> Response:
    """Decline an invitation, or stop using a project shared with you."""
    assert user.id is not None
    await projects_service.leave(session, project_id, user.id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- Our own sharing routes: the owner grants access at once (no invitation) -------------------


@router.post(
    "/{project_id}/access/",
    response_model=list[ProjectMemberRead],
    status_code=status.HTTP_201_CREATED,
)
async def share_project(
    _access: OwnProject,
    project_id: Id,
    payload: ProjectAccessCreate,
    user: ApiUser,
    session: SessionDep,
) -> list[ProjectMemberRead]:
    guest = await projects_service.user_by_email(session, payload.email)
    if not guest.is_active:
        raise NotFoundError(f"no active user with e-mail {payload.email}")
    assert guest.id is not None
    link = LinkUserProject(
        project_id=project_id, user_id=guest.id, is_owner=False, permissions=payload.permissions
    )
    await projects_service.add_link(
        session, link, already=f"{payload.email} already has access to this project"
    )
    await session.commit()
    return await projects_service.members(session, project_id)


@router.patch("/{project_id}/access/{user_id}/", response_model=list[ProjectMemberRead])
async def change_access(
    _access: OwnProject,
    project_id: Id,
    user_id: Id,
    payload: ProjectAccessUpdate,
    user: ApiUser,
    session: SessionDep,
) -> list[ProjectMemberRead]:
    link = await projects_service.guest_link(session, project_id, user_id)
    link.permissions = payload.permissions
    await session.commit()
    return await projects_service.members(session, project_id)


@router.delete("/{project_id}/access/{user_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_access(
    _access: UnlinkMember, project_id: Id, user_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    link = await projects_service.guest_link(session, project_id, user_id)
    await session.delete(link)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
