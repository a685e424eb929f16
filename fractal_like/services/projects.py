"""Projects: reading them as a user sees them, and whether jobs still run in them."""

from __future__ import annotations

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import ACTIVE_JOB_STATUSES, Job, LinkUserProject, Project
from ..schemas.project import ProjectRead


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
