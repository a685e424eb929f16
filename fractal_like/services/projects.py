"""Projects: reading them as a user sees them, whether jobs still run in them, and who
shares them (invitations, guests, one's own access)."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import ACTIVE_JOB_STATUSES, Dataset, Job, LinkUserProject, Project, UserOAuth
from ..schemas.project import (
    ProjectAccessRead,
    ProjectGuestRead,
    ProjectInvitationRead,
    ProjectMemberRead,
    ProjectRead,
)
from .access import readable_projects
from .errors import InvalidError, NotFoundError


def project_read(project: Project, link: LinkUserProject | None) -> ProjectRead:
    data = ProjectRead.model_validate(project)
    data.is_starred = bool(link and link.is_starred)
    return data


async def active_jobs(session: AsyncSession, **where: int) -> int:
    """How many jobs are submitted, running or stopping for e.g. project_id=… or dataset_id=…"""
    query = select(func.count()).select_from(Job).where(col(Job.status).in_(ACTIVE_JOB_STATUSES))
    for column, value in where.items():
        query = query.where(getattr(Job, column) == value)
    return (await session.exec(query)).one()


async def name_taken(session: AsyncSession, user_id: int, name: str, exclude: int | None) -> bool:
    """Project names are unique among the projects a user owns."""
    query = (
        select(Project.id)
        .join(LinkUserProject, col(LinkUserProject.project_id) == Project.id)
        .where(
            LinkUserProject.user_id == user_id,
            col(LinkUserProject.is_owner).is_(True),
            Project.name == name,
        )
    )
    if exclude is not None:
        query = query.where(Project.id != exclude)
    return (await session.exec(query)).first() is not None


async def check_name_free(
    session: AsyncSession, user_id: int, name: str, exclude: int | None = None
) -> None:
    if await name_taken(session, user_id, name, exclude):
        raise InvalidError(f"you already have a project named {name!r}")


# --- Sharing: invitations, guests, and one's own access ------------------------------------


def _owner_email_of(project_id: Any) -> Any:
    """A scalar subquery: the e-mail of the owner of `project_id` (a value or a column)."""
    return (
        select(UserOAuth.email)
        .join(LinkUserProject, col(LinkUserProject.user_id) == UserOAuth.id)
        .where(LinkUserProject.project_id == project_id, col(LinkUserProject.is_owner).is_(True))
        .limit(1)
        .scalar_subquery()
    )


async def user_by_email(session: AsyncSession, email: str) -> UserOAuth:
    """The user with that e-mail (compared without case); 404 if there is none."""
    found = (
        await session.exec(select(UserOAuth).where(func.lower(UserOAuth.email) == email.lower()))
    ).first()
    if found is None:
        raise NotFoundError(f"no user with e-mail {email}")
    return found


async def link_or_404(session: AsyncSession, project_id: int, user_id: int) -> LinkUserProject:
    link = await session.get(LinkUserProject, (project_id, user_id))
    if link is None:
        raise NotFoundError(f"user {user_id} is not linked to project {project_id}")
    return link


async def add_link(session: AsyncSession, link: LinkUserProject, already: str) -> None:
    """A new link of a user to a project; 422 saying `already` when they have one."""
    if await session.get(LinkUserProject, (link.project_id, link.user_id)) is not None:
        raise InvalidError(already)
    session.add(link)


async def guest_link(session: AsyncSession, project_id: int, user_id: int) -> LinkUserProject:
    """The link of a guest (anyone but the owner), whose access the owner may change."""
    link = await link_or_404(session, project_id, user_id)
    if link.is_owner:
        raise InvalidError("the owner's access cannot be changed")
    return link


async def guest_by_email(
    session: AsyncSession, project_id: int, owner_id: int, email: str
) -> LinkUserProject:
    """The link of a guest of the owner's project, named by e-mail (never the owner's)."""
    guest_id = (await user_by_email(session, email)).id
    assert guest_id is not None
    if guest_id == owner_id:
        raise InvalidError("the owner's own access cannot be changed")
    return await link_or_404(session, project_id, guest_id)


async def accept_invitation(session: AsyncSession, project_id: int, user_id: int) -> None:
    link = await link_or_404(session, project_id, user_id)
    if link.is_verified:
        raise NotFoundError(f"no pending invitation to project {project_id}")
    link.is_verified = True


async def leave(session: AsyncSession, project_id: int, user_id: int) -> None:
    """Decline an invitation, or stop using a project shared with one (not one's own)."""
    link = await link_or_404(session, project_id, user_id)
    if link.is_owner:
        raise InvalidError(f"you own project {project_id}: delete it instead")
    await session.delete(link)


async def guests_of(session: AsyncSession, project_id: int) -> list[ProjectGuestRead]:
    """Everyone but the owner, invited or accepted, by e-mail."""
    rows = await session.exec(
        select(UserOAuth.email, LinkUserProject.is_verified, LinkUserProject.permissions)
        .join(LinkUserProject, col(LinkUserProject.user_id) == UserOAuth.id)
        .where(LinkUserProject.project_id == project_id, col(LinkUserProject.is_owner).is_(False))
        .order_by(col(UserOAuth.email))
    )
    return [
        ProjectGuestRead(email=email, is_verified=verified, permissions=permissions)
        for email, verified, permissions in rows.all()
    ]


async def pending_invitations(session: AsyncSession, user_id: int) -> list[ProjectInvitationRead]:
    rows = await session.exec(
        select(Project.id, Project.name, LinkUserProject.permissions, _owner_email_of(Project.id))
        .join(LinkUserProject, col(LinkUserProject.project_id) == Project.id)
        .where(LinkUserProject.user_id == user_id, col(LinkUserProject.is_verified).is_(False))
        .order_by(col(Project.name), col(Project.id))
    )
    return [
        ProjectInvitationRead(
            project_id=project_id,
            project_name=name,
            guest_permissions=permissions,
            owner_email=owner_email or "",
        )
        for project_id, name, permissions, owner_email in rows.all()
    ]


async def access_of(session: AsyncSession, user_id: int, project_id: int) -> ProjectAccessRead:
    """The user's accepted access to the project; 404 without one (a pending invitation
    gives none)."""
    row = (
        await session.exec(
            select(
                LinkUserProject.is_owner,
                LinkUserProject.permissions,
                _owner_email_of(project_id),
            ).where(
                LinkUserProject.project_id == project_id,
                LinkUserProject.user_id == user_id,
                col(LinkUserProject.is_verified).is_(True),
            )
        )
    ).first()
    if row is None:
        raise NotFoundError(f"you have no access to project {project_id}")
    is_owner, permissions, owner_email = row
    return ProjectAccessRead(
        is_owner=is_owner, permissions=permissions, owner_email=owner_email or ""
    )


async def zarr_dirs_of_projects(session: AsyncSession, user_id: int) -> list[str]:
    """The zarr dirs of the datasets of every project the user owns or accepted."""
    rows = await session.exec(
        select(Dataset.zarr_dir)
        .join(LinkUserProject, col(LinkUserProject.project_id) == Dataset.project_id)
        .where(LinkUserProject.user_id == user_id, col(LinkUserProject.is_verified).is_(True))
        .distinct()
        .order_by(col(Dataset.zarr_dir))
    )
    return list(rows.all())


async def projects_of(
    session: AsyncSession, user_id: int, is_owner: bool
) -> list[tuple[Project, LinkUserProject]]:
    """The projects a user owns, or (is_owner=False) those shared with them and accepted."""
    query = readable_projects(user_id).where(col(LinkUserProject.is_owner).is_(is_owner))
    return [
        (project, link)
        for project, link in (await session.exec(query.order_by(col(Project.id)))).all()
    ]


async def latest_job(session: AsyncSession, workflow_id: int, dataset_id: int) -> Job:
    """The job last started for that workflow and dataset; 404 if none."""
    job = (
        await session.exec(
            select(Job)
            .where(Job.workflow_id == workflow_id, Job.dataset_id == dataset_id)
            .order_by(col(Job.start_timestamp).desc(), col(Job.id).desc())
            .limit(1)
        )
    ).first()
    if job is None:
        raise NotFoundError(f"no job of workflow {workflow_id} on dataset {dataset_id}")
    return job


async def members(session: AsyncSession, project_id: int) -> list[ProjectMemberRead]:
    """Everyone linked to the project (owner, members, pending guests), by user id."""
    rows = await session.exec(
        select(LinkUserProject, UserOAuth.email)
        .join(UserOAuth, col(UserOAuth.id) == LinkUserProject.user_id)
        .where(LinkUserProject.project_id == project_id)
        .order_by(col(LinkUserProject.user_id))
    )
    return [
        ProjectMemberRead(
            user_id=link.user_id, email=email, is_owner=link.is_owner, permissions=link.permissions
        )
        for link, email in rows.all()
    ]
