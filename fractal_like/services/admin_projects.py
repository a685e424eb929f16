"""Every user's projects and project links, for superusers: filtered pages, ownership
transfer, and verifying a guest's invitation (a guest cannot accept one themselves)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Dataset, LinkUserProject, Profile, Project, UserOAuth
from ..schemas.admin import LinkUserProjectRead, ProjectReadSuperuser
from .access import get_or_404, user_or_404
from .errors import InvalidError, NotFoundError
from .pages import page_of
from .paths import PathRefused, check_user_dir
from .projects import name_taken


@dataclass
class ProjectFilters:
    """The reference's filters of GET /admin/v2/project/; None means "any"."""

    project_id: int | None = None
    name: str | None = None  # a part of the name, any case
    user_email: str | None = None  # the owner's, exactly


async def list_projects(
    session: AsyncSession, filters: ProjectFilters, page: int, page_size: int | None
) -> tuple[int, int, list[ProjectReadSuperuser]]:
    """(total, page size, the page) of every project with its owner, by owner then name."""
    where: list[ColumnElement[bool]] = [col(LinkUserProject.is_owner).is_(True)]
    if filters.project_id is not None:
        where.append(col(Project.id) == filters.project_id)
    if filters.name is not None:
        where.append(col(Project.name).icontains(filters.name, autoescape=True))
    if filters.user_email is not None:
        where.append(col(UserOAuth.email) == filters.user_email)
    query = (
        select(Project, LinkUserProject, UserOAuth.email)
        .join(LinkUserProject, col(LinkUserProject.project_id) == Project.id)
        .join(UserOAuth, col(UserOAuth.id) == LinkUserProject.user_id)
        .where(*where)
        .order_by(col(UserOAuth.email), col(Project.name), col(Project.id))
    )
    total, size, rows = await page_of(session, query, page, page_size)
    items = [
        ProjectReadSuperuser(
            id=project.id,
            name=project.name,
            description=project.description,
            is_starred=link.is_starred,
            timestamp_created=project.timestamp_created,
            user_email=email,
        )
        for project, link, email in rows
    ]
    return total, size, items


async def _resource_of(session: AsyncSession, user: UserOAuth) -> int:
    if user.profile_id is None:
        raise InvalidError(f"user {user.email} has no computing profile")
    profile = await get_or_404(session, Profile, user.profile_id, "profile")
    return profile.resource_id


async def transfer_ownership(session: AsyncSession, project_id: int, user_id: int) -> None:
    """Make `user_id` the owner of the project, in place of its owner (who loses it).

    As in Fractal, the new owner must be able to use the project as its owner was: not a
    guest, on the same resource, no project of theirs with that name, and every dataset's
    zarr_dir inside their project dirs.
    """
    project = await get_or_404(session, Project, project_id, "project")
    new_owner = await user_or_404(session, user_id)
    if new_owner.is_guest:
        raise InvalidError("a guest user cannot own a project")
    owner_link = (
        await session.exec(
            select(LinkUserProject).where(
                LinkUserProject.project_id == project_id, col(LinkUserProject.is_owner).is_(True)
            )
        )
    ).first()
    if owner_link is None:  # not made by our routes: say so rather than guess an owner
        raise InvalidError(f"project {project_id} has no owner to replace")
    if owner_link.user_id == user_id:
        raise InvalidError(f"user {user_id} already owns project {project_id}")
    old_owner = await user_or_404(session, owner_link.user_id)
    new_resource = await _resource_of(session, new_owner)
    if await _resource_of(session, old_owner) != new_resource:
        raise InvalidError(
            f"{old_owner.email} and {new_owner.email} use different computing resources",
        )
    if await name_taken(session, user_id, project.name, exclude=project_id):
        raise InvalidError(f"{new_owner.email} already owns a project named {project.name!r}")
    zarr_dirs = (
        await session.exec(select(Dataset.zarr_dir).where(Dataset.project_id == project_id))
    ).all()
    for zarr_dir in zarr_dirs:
        try:
            check_user_dir(zarr_dir, list(new_owner.project_dirs))
        except PathRefused as error:
            raise InvalidError(
                f"{new_owner.email} could not use this project's data: {error}"
            ) from None
    # The new owner's former access (a member, an invitation) gives way to ownership.
    await session.execute(
        delete(LinkUserProject).where(
            col(LinkUserProject.project_id) == project_id, col(LinkUserProject.user_id) == user_id
        )
    )
    await session.execute(
        update(LinkUserProject)
        .where(
            col(LinkUserProject.project_id) == project_id,
            col(LinkUserProject.user_id) == owner_link.user_id,
        )
        .values(user_id=user_id)
    )
    await session.commit()


@dataclass
class LinkFilters:
    """The reference's filters of GET /admin/v2/linkuserproject/; None means "any"."""

    user_id: int | None = None
    project_id: int | None = None
    project_name: str | None = None  # a part of the name, any case
    is_owner: bool | None = None
    is_verified: bool | None = None


async def list_links(
    session: AsyncSession, filters: LinkFilters, page: int, page_size: int | None
) -> tuple[int, int, list[LinkUserProjectRead]]:
    """(total, page size, the page) of every user-project link, by e-mail then project name."""
    equal: dict[Any, Any] = {
        col(LinkUserProject.user_id): filters.user_id,
        col(LinkUserProject.project_id): filters.project_id,
        col(LinkUserProject.is_owner): filters.is_owner,
        col(LinkUserProject.is_verified): filters.is_verified,
    }
    where = [column == value for column, value in equal.items() if value is not None]
    if filters.project_name is not None:
        where.append(col(Project.name).icontains(filters.project_name, autoescape=True))
    query = (
        select(LinkUserProject, UserOAuth.email, Project.name)
        .join(UserOAuth, col(UserOAuth.id) == LinkUserProject.user_id)
        .join(Project, col(Project.id) == LinkUserProject.project_id)
        .where(*where)
        .order_by(col(UserOAuth.email), col(Project.name), col(LinkUserProject.project_id))
    )
    total, size, rows = await page_of(session, query, page, page_size)
    items = [
        LinkUserProjectRead(
            user_id=link.user_id,
            user_email=email,
            project_id=link.project_id,
            project_name=name,
            is_verified=link.is_verified,
            is_owner=link.is_owner,
            permissions=link.permissions,
        )
        for link, email, name in rows
    ]
    return total, size, items


async def verify_guest_invitation(
    session: AsyncSession, guest_user_id: int, project_id: int
) -> None:
    """Accept a guest's pending invitation on their behalf (read-only ones only)."""
    guest = await user_or_404(session, guest_user_id)
    if not guest.is_guest:
        raise InvalidError(
            f"user {guest_user_id} is not a guest: they accept invitations themselves"
        )
    link = await session.get(LinkUserProject, (project_id, guest_user_id))
    if link is None or link.is_verified:
        raise NotFoundError(
            f"user {guest_user_id} has no pending invitation to project {project_id}",
        )
    if link.permissions != "r":
        raise InvalidError(
            f"a guest may only read a project (invited with {link.permissions!r})",
        )
    link.is_verified = True
    session.add(link)
    await session.commit()
