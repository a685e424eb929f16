"""Reading datasets across projects: every dataset a user may read, with its owner and size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_
from sqlalchemy.orm import aliased
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Dataset, Image, LinkUserProject, Project, UserOAuth


@dataclass(frozen=True)
class DatasetFilters:
    project_name: str | None = None  # a part of the project's name, in any letter case
    dataset_name: str | None = None  # a part of the dataset's name, in any letter case
    only_owned: bool = False


@dataclass(frozen=True)
class DatasetRow:
    dataset: Dataset
    project: Project
    link: LinkUserProject
    owner_email: str
    image_count: int


def _where(user_id: int, filters: DatasetFilters) -> list[Any]:
    where: list[Any] = [
        LinkUserProject.user_id == user_id,
        col(LinkUserProject.is_verified).is_(True),
    ]
    if filters.only_owned:
        where.append(col(LinkUserProject.is_owner).is_(True))
    if filters.project_name is not None:
        where.append(col(Project.name).icontains(filters.project_name, autoescape=True))
    if filters.dataset_name is not None:
        where.append(col(Dataset.name).icontains(filters.dataset_name, autoescape=True))
    return where


def _joined(query: Any) -> Any:
    return query.join(Project, col(Project.id) == Dataset.project_id).join(
        LinkUserProject, col(LinkUserProject.project_id) == Project.id
    )


async def readable_datasets(
    session: AsyncSession, user_id: int, filters: DatasetFilters, page: int, page_size: int | None
) -> tuple[int, int, list[DatasetRow]]:
    """(total, page size, the page) of the datasets of the projects the user may read,
    starred first, then newest first."""
    where = _where(user_id, filters)
    total = (
        await session.exec(_joined(select(func.count()).select_from(Dataset)).where(*where))
    ).one()
    size = page_size or total
    owners = aliased(LinkUserProject)  # apart from the reader's link of the outer query
    owner_email = (
        select(UserOAuth.email)
        .join(owners, col(owners.user_id) == UserOAuth.id)
        .where(and_(col(owners.project_id) == Dataset.project_id, col(owners.is_owner).is_(True)))
        .limit(1)
        .scalar_subquery()
        .correlate(Dataset)
    )
    image_count = (
        select(func.count())
        .select_from(Image)
        .where(col(Image.dataset_id) == Dataset.id)
        .scalar_subquery()
        .correlate(Dataset)
    )
    rows = await session.exec(
        _joined(select(Dataset, Project, LinkUserProject, owner_email, image_count))
        .where(*where)
        .order_by(
            col(Dataset.is_starred).desc(),
            col(Dataset.timestamp_created).desc(),
            col(Dataset.id).desc(),
        )
        .offset((page - 1) * size)
        .limit(size)
    )
    items = [
        DatasetRow(dataset, project, link, email or "", count or 0)
        for dataset, project, link, email, count in rows.all()
    ]
    return total, size, items
