"""Provenance under /api/v2/project/{project_id}/status/: Fractal's history routes and progress."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from ...models import UnitStatus
from ...schemas._base import Id
from ...schemas.history import (
    HistoryRunReadAggregated,
    HistoryUnitRead,
    ImageLogRequest,
    JobProgress,
    Page,
    StatusImagePage,
    StatusImageQuery,
    WorkflowTaskStatus,
)
from ...services import history as service
from ...services.access import dataset_and_wftask
from ..deps import SessionDep
from ..ownership import ReadDataset, ReadDatasetTask, ReadJob, ReadWorkflow
from ..query_params import PaginationDep
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(
    prefix="/api/v2/project/{project_id}/status", tags=["history"], route_class=GuardedRoute
)


@router.get(
    "/",
    response_model=dict[int, WorkflowTaskStatus | None],
    response_model_exclude_unset=True,
)
async def workflow_status(
    _workflow: ReadWorkflow,
    _dataset: ReadDataset,
    project_id: Id,
    dataset_id: Id,
    workflow_id: Id,
    user: ApiUser,
    session: SessionDep,
) -> dict[int, WorkflowTaskStatus | None]:
    return await service.workflow_statuses(session, workflow_id, dataset_id)


@router.get("/run/", response_model=list[HistoryRunReadAggregated])
async def list_runs(
    _subject: ReadDatasetTask,
    project_id: Id,
    dataset_id: Id,
    workflowtask_id: Id,
    user: ApiUser,
    session: SessionDep,
) -> list[HistoryRunReadAggregated]:
    return await service.runs_aggregated(session, dataset_id, workflowtask_id)


@router.get("/run/{history_run_id}/units/", response_model=Page[HistoryUnitRead])
async def list_run_units(
    _subject: ReadDatasetTask,
    project_id: Id,
    history_run_id: Id,
    dataset_id: Id,
    workflowtask_id: Id,
    user: ApiUser,
    session: SessionDep,
    pages: PaginationDep,
    unit_status: UnitStatus | None = None,
) -> Page[HistoryUnitRead]:
    await service.run_of(session, history_run_id, dataset_id, workflowtask_id)
    return await service.units_page(
        session, history_run_id, unit_status, pages.page, pages.page_size
    )


@router.post("/images/", response_model=StatusImagePage)
async def query_images_with_status(
    _subject: ReadDatasetTask,
    project_id: Id,
    dataset_id: Id,
    workflowtask_id: Id,
    user: ApiUser,
    session: SessionDep,
    pages: PaginationDep,
    payload: StatusImageQuery | None = None,
    include_warnings: bool = False,
) -> StatusImagePage:
    return await service.images_with_status(
        session,
        dataset_id,
        workflowtask_id,
        payload or StatusImageQuery(),
        pages.page,
        pages.page_size,
        include_warnings,
    )


@router.post("/image-log/", response_model=str)
async def image_log(
    project_id: Id, payload: ImageLogRequest, user: ApiUser, session: SessionDep
) -> str:
    """The log of the unit that last processed an image for a workflow task and dataset."""
    # Ids in the body: checked by the helper behind ReadDatasetTask, after the body is valid.
    _, wftask = await dataset_and_wftask(
        session, user, project_id, payload.dataset_id, payload.workflowtask_id
    )
    logfile, working_dir, label = await service.image_log_source(
        session, payload.zarr_url, payload.dataset_id, wftask
    )
    return await run_in_threadpool(service.read_unit_log, logfile, working_dir, label)


@router.get("/unit-log/", response_model=str)
async def unit_log(
    subject: ReadDatasetTask,
    project_id: Id,
    history_run_id: Id,
    history_unit_id: Id,
    workflowtask_id: Id,
    dataset_id: Id,
    user: ApiUser,
    session: SessionDep,
) -> str:
    logfile, working_dir, label = await service.unit_log_source(
        session, history_run_id, history_unit_id, dataset_id, subject.wftask
    )
    return await run_in_threadpool(service.read_unit_log, logfile, working_dir, label)


@router.get("/progress/", response_model=JobProgress)
async def job_progress(
    job: ReadJob, project_id: Id, job_id: Id, user: ApiUser, session: SessionDep
) -> JobProgress:
    return await service.job_progress(session, job)
