"""Datasets of a project, and their images, under /api/v2/project/{project_id}/dataset/."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlmodel import col, select

from ...models import Dataset, Image, LinkUserProject, Project
from ...schemas._base import Id, PageNumber, Text
from ...schemas.dataset import (
    DatasetCreate,
    DatasetRead,
    DatasetUpdate,
    ImageCreate,
    ImagePage,
    ImageQuery,
    ImageRead,
    ImageUpdate,
)
from ...services import images as image_service
from ...services.access import Need, child_of_project, project_for
from ...services.paths import PathRefused, check_under, check_user_dir, slugify
from ...services.projects import active_jobs, project_read
from ..deps import SessionDep
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(
    prefix="/api/v2/project/{project_id}/dataset", tags=["datasets"], route_class=GuardedRoute
)

MAX_PAGE_SIZE = 100_000


def _read(dataset: Dataset, project: Project, link: LinkUserProject) -> DatasetRead:
    return DatasetRead(
        id=dataset.id,  # type: ignore[arg-type]
        name=dataset.name,
        project_id=dataset.project_id,
        project=project_read(project, link),
        zarr_dir=dataset.zarr_dir,
        is_starred=dataset.is_starred,
        timestamp_created=dataset.timestamp_created,
    )


def _refused(error: PathRefused) -> HTTPException:
    return HTTPException(422, detail=str(error))


@router.get("/", response_model=list[DatasetRead])
async def list_datasets(project_id: Id, user: ApiUser, session: SessionDep) -> list[DatasetRead]:
    project, link = await project_for(session, user, project_id)
    query = select(Dataset).where(Dataset.project_id == project_id).order_by(col(Dataset.id))
    return [_read(dataset, project, link) for dataset in (await session.exec(query)).all()]


@router.post("/", response_model=DatasetRead, status_code=status.HTTP_201_CREATED)
async def create_dataset(
    project_id: Id, payload: DatasetCreate, user: ApiUser, session: SessionDep
) -> DatasetRead:
    project, link = await project_for(session, user, project_id, Need.WRITE)
    if payload.zarr_dir is not None and (payload.project_dir or payload.zarr_subfolder):
        raise HTTPException(422, detail="give either zarr_dir or project_dir/zarr_subfolder")
    dataset = Dataset(project_id=project_id, name=payload.name, zarr_dir="/pending")
    session.add(dataset)
    await session.flush()
    try:
        if payload.zarr_dir is not None:
            zarr_dir = check_user_dir(payload.zarr_dir, user.project_dirs)
        else:
            root = payload.project_dir or (user.project_dirs[0] if user.project_dirs else None)
            if root is None:
                raise PathRefused("your account has no project dirs: give zarr_dir or ask an admin")
            root = check_user_dir(root, user.project_dirs, "project_dir")
            if payload.zarr_subfolder is not None:
                candidate = f"{root}/{payload.zarr_subfolder}"
            else:
                candidate = (
                    f"{root}/fractal/{project_id}_{slugify(project.name)}/"
                    f"{dataset.id}_{slugify(payload.name)}"
                )
            zarr_dir = check_user_dir(candidate, user.project_dirs)
    except PathRefused as error:
        await session.rollback()
        raise _refused(error)
    dataset.zarr_dir = zarr_dir
    await session.commit()
    return _read(dataset, project, link)


@router.get("/{dataset_id}/", response_model=DatasetRead)
async def get_dataset(
    project_id: Id, dataset_id: Id, user: ApiUser, session: SessionDep
) -> DatasetRead:
    project, link = await project_for(session, user, project_id)
    dataset = await child_of_project(session, Dataset, dataset_id, project_id, "dataset")
    return _read(dataset, project, link)


@router.patch("/{dataset_id}/", response_model=DatasetRead)
async def update_dataset(
    project_id: Id, dataset_id: Id, payload: DatasetUpdate, user: ApiUser, session: SessionDep
) -> DatasetRead:
    project, link = await project_for(session, user, project_id, Need.WRITE)
    dataset = await child_of_project(session, Dataset, dataset_id, project_id, "dataset")
    changes = payload.model_dump(exclude_unset=True)
    if changes.get("zarr_dir") is not None:
        if await image_service.count_images(session, dataset_id):
            raise HTTPException(422, detail="zarr_dir cannot change once the dataset has images")
        try:
            changes["zarr_dir"] = check_user_dir(changes["zarr_dir"], user.project_dirs)
        except PathRefused as error:
            raise _refused(error)
    for key, value in changes.items():
        if value is None:
            raise HTTPException(422, detail=f"{key} cannot be null")
        setattr(dataset, key, value)
    await session.commit()
    return _read(dataset, project, link)


@router.delete("/{dataset_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_dataset(
    project_id: Id, dataset_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    await project_for(session, user, project_id, Need.WRITE)
    dataset = await child_of_project(session, Dataset, dataset_id, project_id, "dataset")
    running = await active_jobs(session, dataset_id=dataset_id)
    if running:
        raise HTTPException(422, detail=f"dataset {dataset_id} is used by {running} active job(s)")
    await image_service.delete_all_images(session, dataset_id)
    await session.delete(dataset)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{dataset_id}/images/", response_model=ImageRead, status_code=status.HTTP_201_CREATED)
async def add_image(
    project_id: Id, dataset_id: Id, payload: ImageCreate, user: ApiUser, session: SessionDep
) -> Image:
    await project_for(session, user, project_id, Need.WRITE)
    dataset = await child_of_project(session, Dataset, dataset_id, project_id, "dataset")
    try:
        zarr_url = check_under(payload.zarr_url, dataset.zarr_dir)
    except PathRefused as error:
        raise _refused(error)
    try:
        image = await image_service.create_image(
            session, dataset_id, zarr_url, payload.origin, payload.attributes, payload.types
        )
    except image_service.ImageTooLargeError as error:
        raise HTTPException(422, detail=str(error))
    if image is None:
        raise HTTPException(422, detail=f"the dataset already has an image {zarr_url!r}")
    await session.commit()
    return image


@router.post("/{dataset_id}/images/query/", response_model=ImagePage)
async def query_images(
    project_id: Id,
    dataset_id: Id,
    user: ApiUser,
    session: SessionDep,
    payload: ImageQuery | None = None,
    page: PageNumber = 1,
    page_size: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
) -> ImagePage:
    await project_for(session, user, project_id)
    await child_of_project(session, Dataset, dataset_id, project_id, "dataset")
    payload = payload or ImageQuery()
    filters = {
        "type_filters": payload.type_filters,
        "attribute_filters": payload.attribute_filters,
        "zarr_url": payload.zarr_url,
    }
    total = await image_service.count_images(session, dataset_id, **filters)
    size = page_size or max(total, 1)
    last_page = max(1, -(-total // size))
    current = min(page, last_page)
    rows = await image_service.query_images(
        session, dataset_id, **filters, offset=(current - 1) * size, limit=size
    )
    attributes, types = await image_service.summary(session, dataset_id)
    return ImagePage(
        total_count=total,
        page_size=size,
        current_page=current,
        attributes=attributes,
        types=types,
        images=[ImageRead.model_validate(row) for row in rows],
    )


@router.patch("/{dataset_id}/images/", response_model=ImageRead)
async def update_image(
    project_id: Id, dataset_id: Id, payload: ImageUpdate, user: ApiUser, session: SessionDep
) -> Image:
    await project_for(session, user, project_id, Need.WRITE)
    await child_of_project(session, Dataset, dataset_id, project_id, "dataset")
    try:
        image = await image_service.update_image(
            session, dataset_id, payload.zarr_url, payload.attributes, payload.types
        )
    except image_service.ImageTooLargeError as error:
        raise HTTPException(422, detail=str(error))
    if image is None:
        raise HTTPException(404, detail=f"no image {payload.zarr_url!r} in dataset {dataset_id}")
    await session.commit()
    await session.refresh(image)
    return image


@router.delete("/{dataset_id}/images/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_image(
    project_id: Id,
    dataset_id: Id,
    zarr_url: Annotated[Text, Query(min_length=1, max_length=4096)],
    user: ApiUser,
    session: SessionDep,
) -> Response:
    await project_for(session, user, project_id, Need.WRITE)
    await child_of_project(session, Dataset, dataset_id, project_id, "dataset")
    if not await image_service.delete_image(session, dataset_id, zarr_url):
        raise HTTPException(404, detail=f"no image {zarr_url!r} in dataset {dataset_id}")
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
