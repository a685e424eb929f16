"""Reading datasets across projects: every dataset a user may read, with its owner and size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_
from sqlalchemy.orm import aliased
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Dataset, Image, LinkUserProject, Project, UserOAuth
from ..schemas.dataset import DatasetCreate
from .errors import InvalidError
from .paths import PathRefused, check_user_dir, slugify


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
        _joined(select(Dataset, Project, LinkUserProject, owner_email, image_count))  # type: ignore[call-overload]  # sqlmodel types select() for 4 columns at most
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


async def project_datasets(session: AsyncSession, project_id: int) -> list[Dataset]:
    query = select(Dataset).where(Dataset.project_id == project_id).order_by(col(Dataset.id))
    return list((await session.exec(query)).all())


def _zarr_dir(user: UserOAuth, project: Project, dataset: Dataset, payload: DatasetCreate) -> str:
    """The dataset's zarr_dir: the one given, or one made under a project dir of the user
    (`<root>/fractal/<project id>_<name>/<dataset id>_<name>` unless a subfolder is given)."""
    if payload.zarr_dir is not None:
        return check_user_dir(payload.zarr_dir, user.project_dirs)
    root = payload.project_dir or (user.project_dirs[0] if user.project_dirs else None)
    if root is None:
        raise PathRefused("your account has no project dirs: give zarr_dir or ask an admin")
    root = check_user_dir(root, user.project_dirs, "project_dir")
    if payload.zarr_subfolder is not None:
        candidate = f"{root}/{payload.zarr_subfolder}"
    else:
        candidate = (
            f"{root}/fractal/{project.id}_{slugify(project.name)}/"
            f"{dataset.id}_{slugify(payload.name)}"
        )
    return check_user_dir(candidate, user.project_dirs)


async def create_dataset(
    session: AsyncSession, user: UserOAuth, project: Project, payload: DatasetCreate
) -> Dataset:
    """A new dataset of the project (flushed, not committed); 422 for a refused folder."""
    if payload.zarr_dir is not None and (payload.project_dir or payload.zarr_subfolder):
        raise InvalidError("give either zarr_dir or project_dir/zarr_subfolder")
    assert project.id is not None
    # Flushed first: the default folder's name carries the dataset's id.
    dataset = Dataset(project_id=project.id, name=payload.name, zarr_dir="/pending")
    session.add(dataset)
    await session.flush()
    try:
        dataset.zarr_dir = _zarr_dir(user, project, dataset, payload)
    except PathRefused as error:
        await session.rollback()
        raise InvalidError(str(error)) from None
    return dataset
