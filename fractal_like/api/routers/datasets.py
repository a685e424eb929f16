"""Datasets of a project, and their images, under /api/v2/project/{project_id}/dataset/;
every dataset the user may read under /api/v2/dataset/."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ...models import Dataset, Image, LinkUserProject, Project
from ...schemas._base import Id, PageNumber, Text
from ...schemas.dataset import (
    NEW_IMAGES,
    DatasetCreate,
    DatasetExport,
    DatasetImport,
    DatasetRead,
    DatasetReadExpanded,
    DatasetUpdate,
    ImageCreate,
    ImageFilters,
    ImagePage,
    ImageQuery,
    ImageRead,
    ImageUpdate,
)
from ...schemas.history import Page
from ...services import datasets as dataset_service
from ...services import image_checks
from ...services import images as image_service
from ...services.access import wftask_of_project
from ...services.datasets import DatasetFilters, readable_datasets
from ...services.errors import InvalidError, NotFoundError
from ...services.image_updates import NewImage, check_new_images, insert_new_images
from ...services.paths import check_under, check_user_dir
from ...services.projects import active_jobs, project_read
from ..deps import SessionDep
from ..ownership import ReadDataset, ReadProject, ReadWorkflow, WriteDataset, WriteProject
from ..query_params import MAX_PAGE_SIZE, PaginationDep
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(
    prefix="/api/v2/project/{project_id}/dataset", tags=["datasets"], route_class=GuardedRoute
)
all_datasets_router = APIRouter(
    prefix="/api/v2/dataset", tags=["datasets"], route_class=GuardedRoute
)

# Search terms of GET /api/v2/dataset/: at most a name's length.
NameSearch = Annotated[Text | None, Query(max_length=255)]


def _read(dataset: Dataset, project: Project, link: LinkUserProject) -> DatasetRead:
    return DatasetRead(
        id=dataset.id,
        name=dataset.name,
        project_id=dataset.project_id,
        project=project_read(project, link),
        zarr_dir=dataset.zarr_dir,
        is_starred=dataset.is_starred,
        timestamp_created=dataset.timestamp_created,
    )


@router.get("/", response_model=list[DatasetRead])
async def list_datasets(
    access: ReadProject, project_id: Id, user: ApiUser, session: SessionDep
) -> list[DatasetRead]:
    project, link = access
    datasets = await dataset_service.project_datasets(session, project_id)
    return [_read(dataset, project, link) for dataset in datasets]


@router.post("/", response_model=DatasetRead, status_code=status.HTTP_201_CREATED)
async def create_dataset(
    access: WriteProject, project_id: Id, payload: DatasetCreate, user: ApiUser, session: SessionDep
) -> DatasetRead:
    project, link = access
    dataset = await dataset_service.create_dataset(session, user, project, payload)
    await session.commit()
    return _read(dataset, project, link)


@router.get("/{dataset_id}/", response_model=DatasetRead)
async def get_dataset(
    access: ReadProject,
    dataset: ReadDataset,
    project_id: Id,
    dataset_id: Id,
    user: ApiUser,
    session: SessionDep,
) -> DatasetRead:
    project, link = access
    return _read(dataset, project, link)


@router.patch("/{dataset_id}/", response_model=DatasetRead)
async def update_dataset(
    access: WriteProject,
    dataset: WriteDataset,
    project_id: Id,
    dataset_id: Id,
    payload: DatasetUpdate,
    user: ApiUser,
    session: SessionDep,
) -> DatasetRead:
    project, link = access
    changes = payload.model_dump(exclude_unset=True)
    if changes.get("zarr_dir") is not None:
        if await image_service.count_images(session, dataset_id):
            raise InvalidError("zarr_dir cannot change once the dataset has images")
        changes["zarr_dir"] = check_user_dir(changes["zarr_dir"], user.project_dirs)
    for key, value in changes.items():
        if value is None:
            raise InvalidError(f"{key} cannot be null")
        setattr(dataset, key, value)
    await session.commit()
    return _read(dataset, project, link)


@router.delete("/{dataset_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_dataset(
    dataset: WriteDataset, project_id: Id, dataset_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    running = await active_jobs(session, dataset_id=dataset_id)
    if running:
        raise InvalidError(f"dataset {dataset_id} is used by {running} active job(s)")
    await image_service.delete_all_images(session, dataset_id)
    await session.delete(dataset)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{dataset_id}/images/", response_model=ImageRead, status_code=status.HTTP_201_CREATED)
async def add_image(
    dataset: WriteDataset,
    project_id: Id,
    dataset_id: Id,
    payload: ImageCreate,
    user: ApiUser,
    session: SessionDep,
) -> Image:
    zarr_url = check_under(payload.zarr_url, dataset.zarr_dir)
    image = await image_service.create_image(
        session, dataset_id, zarr_url, payload.origin, payload.attributes, payload.types
    )
    if image is None:
        raise InvalidError(f"the dataset already has an image {zarr_url!r}")
    await session.commit()
    return image


@router.post("/{dataset_id}/images/query/", response_model=ImagePage)
async def query_images(
    _dataset: ReadDataset,
    project_id: Id,
    dataset_id: Id,
    user: ApiUser,
    session: SessionDep,
    payload: ImageQuery | None = None,
    page: PageNumber = 1,
    page_size: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
) -> ImagePage:
    payload = payload or ImageQuery()
    filters: dict[str, Any] = {
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
        items=[ImageRead.model_validate(row) for row in rows],
    )


@router.patch("/{dataset_id}/images/", response_model=ImageRead)
async def update_image(
    _dataset: WriteDataset,
    project_id: Id,
    dataset_id: Id,
    payload: ImageUpdate,
    user: ApiUser,
    session: SessionDep,
) -> Image:
    image = await image_service.update_image(
        session, dataset_id, payload.zarr_url, payload.attributes, payload.types
    )
    if image is None:
        raise NotFoundError(f"no image {payload.zarr_url!r} in dataset {dataset_id}")
    await session.commit()
    await session.refresh(image)
    return image


@router.delete("/{dataset_id}/images/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_image(
    _dataset: WriteDataset,
    project_id: Id,
    dataset_id: Id,
    zarr_url: Annotated[Text, Query(min_length=1, max_length=4096)],
    user: ApiUser,
    session: SessionDep,
) -> Response:
    if not await image_service.delete_image(session, dataset_id, zarr_url):
        raise NotFoundError(f"no image {zarr_url!r} in dataset {dataset_id}")
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@all_datasets_router.get("/", response_model=Page[DatasetReadExpanded])
async def list_all_datasets(
    user: ApiUser,
    session: SessionDep,
    pages: PaginationDep,
    project_name: NameSearch = None,
    dataset_name: NameSearch = None,
    only_owned: bool = False,
) -> Page[DatasetReadExpanded]:
    """The datasets of every project the user may read, starred first, then newest first."""
    assert user.id is not None
    filters = DatasetFilters(project_name, dataset_name, only_owned)
    total, size, rows = await readable_datasets(
        session, user.id, filters, pages.page, pages.page_size
    )
    items = [
        DatasetReadExpanded(
            **_read(row.dataset, row.project, row.link).model_dump(),
            owner_email=row.owner_email,
            image_count=row.image_count,
        )
        for row in rows
    ]
    return Page[DatasetReadExpanded](
        current_page=pages.page, page_size=size, total_count=total, items=items
    )


@router.get("/{dataset_id}/export/", response_model=DatasetExport)
async def export_dataset(
    dataset: ReadDataset, project_id: Id, dataset_id: Id, user: ApiUser, session: SessionDep
) -> DatasetExport:
    images = await image_service.query_images(session, dataset_id)
    return DatasetExport(
        name=dataset.name,
        zarr_dir=dataset.zarr_dir,
        images=[ImageRead.model_validate(image) for image in images],
    )


def _checked_images(raw: list[Any], zarr_dir: str) -> list[NewImage]:
    """An import's images validated as ImageCreate bodies, then checked as adding each one
    to the dataset would be; 422 otherwise."""
    try:
        given = NEW_IMAGES.validate_python(raw)
    except ValidationError as error:
        raise RequestValidationError(
            [{**item, "loc": ("body", "images", *item["loc"])} for item in error.errors()]
        ) from None
    images = [NewImage(i.zarr_url, i.origin, i.attributes, i.types) for i in given]
    return check_new_images(images, zarr_dir)


@router.post("/import/", response_model=DatasetRead, status_code=status.HTTP_201_CREATED)
async def import_dataset(
    access: WriteProject, project_id: Id, payload: DatasetImport, user: ApiUser, session: SessionDep
) -> DatasetRead:
    """A new dataset with the given zarr_dir and images, checked as creating a dataset with
    that zarr_dir and adding each image would be; all or nothing, in one transaction."""
    project, link = access
    zarr_dir = check_user_dir(payload.zarr_dir, user.project_dirs)
    # Possibly tens of thousands of images: validated and checked off the event loop.
    images = await run_in_threadpool(_checked_images, payload.images, zarr_dir)
    dataset = Dataset(project_id=project_id, name=payload.name, zarr_dir=zarr_dir)
    session.add(dataset)
    await session.flush()
    assert dataset.id is not None
    await insert_new_images(session, dataset.id, images)
    await session.commit()
    return _read(dataset, project, link)


@router.post("/{dataset_id}/images/verify-unique-types/", response_model=list[str])
async def verify_unique_types(
    _dataset: ReadDataset,
    project_id: Id,
    dataset_id: Id,
    workflowtask_id: Id,
    user: ApiUser,
    session: SessionDep,
    query: ImageFilters | None = None,
) -> list[str]:
    """The type keys whose value differs among the images the query selects."""
    return await image_checks.non_unique_types(
        session, dataset_id, workflowtask_id, query or ImageFilters()
    )


@router.post("/{dataset_id}/images/non-processed/", response_model=list[str])
async def non_processed_images(
    _dataset: ReadDataset,
    _workflow: ReadWorkflow,
    project_id: Id,
    dataset_id: Id,
    workflow_id: Id,
    workflowtask_id: Id,
    filters: ImageFilters,
    user: ApiUser,
    session: SessionDep,
) -> list[str]:
    """The images the workflow task would get that the task before it has not processed
    successfully; empty when that check does not apply (first task, after a converter or
    a task that sets types)."""
    wftask = await wftask_of_project(session, workflowtask_id, project_id, workflow_id)
    previous = await image_checks.previous_task_to_check(session, wftask)
    if previous is None:
        return []
    assert previous.id is not None
    return await image_checks.unprocessed_images(session, dataset_id, previous.id, filters)
