"""Every user's jobs under /admin/v2/job/ (superusers only): list, show, fail, stop, download."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import status as http_status
from fastapi.responses import StreamingResponse
from pydantic import EmailStr

from ...models import Job
from ...schemas._base import Id, StrictModel
from ...schemas.history import Page
from ...schemas.job import FractalJobStatus, JobRead
from ...services import admin_jobs as service
from ...services.access import get_or_404
from ...services.jobs import stop_now_or_later
from ..deps import SessionDep
from ..query_params import PaginationDep, utc_bound
from ..request_body import GuardedRoute
from ..users import Superuser
from .jobs import read_job, zip_response

router = APIRouter(prefix="/admin/v2/job", tags=["admin"], route_class=GuardedRoute)


class JobUpdate(StrictModel):
    """Fractal's body: the new status (only `failed` is accepted, see the service)."""

    status: FractalJobStatus


@router.get("/", response_model=Page[JobRead])
async def view_job(
    _admin: Superuser,
    session: SessionDep,
    pages: PaginationDep,
    id: Id | None = None,
    resource_id: Id | None = None,
    project_owner_id: Id | None = None,
    job_user_email: Annotated[EmailStr | None, Query(max_length=320)] = None,
    project_id: Id | None = None,
    dataset_id: Id | None = None,
    workflow_id: Id | None = None,
    status: FractalJobStatus | None = None,
    start_timestamp_min: datetime | None = None,
    start_timestamp_max: datetime | None = None,
    end_timestamp_min: datetime | None = None,
    end_timestamp_max: datetime | None = None,
    log: bool = True,
) -> Page[JobRead]:
    filters = service.JobFilters(
        id=id,
        resource_id=resource_id,
        project_owner_id=project_owner_id,
        job_user_email=job_user_email,
        project_id=project_id,
        dataset_id=dataset_id,
        workflow_id=workflow_id,
        status=status,
        start_timestamp_min=utc_bound(start_timestamp_min, "start_timestamp_min"),
        start_timestamp_max=utc_bound(start_timestamp_max, "start_timestamp_max"),
        end_timestamp_min=utc_bound(end_timestamp_min, "end_timestamp_min"),
        end_timestamp_max=utc_bound(end_timestamp_max, "end_timestamp_max"),
    )
    total, size, jobs = await service.list_jobs(session, filters, pages.page, pages.page_size)
    items = [await read_job(job) for job in jobs]
    if not log:
        for item in items:
            item.log = None
    return Page[JobRead](current_page=pages.page, page_size=size, total_count=total, items=items)


@router.get("/{job_id}/", response_model=JobRead)
async def view_single_job(
    job_id: Id, _admin: Superuser, session: SessionDep, show_tmp_logs: bool = False
) -> JobRead:
    return await read_job(await get_or_404(session, Job, job_id, "job"), show_tmp_logs)


@router.patch("/{job_id}/", response_model=JobRead)
async def update_job(
    job_id: Id, payload: JobUpdate, _admin: Superuser, session: SessionDep
) -> JobRead:
    job = await get_or_404(session, Job, job_id, "job")
    await service.set_status(session, job, payload.status)
    await session.commit()
    return await read_job(job)


@router.get("/{job_id}/stop/", response_model=JobRead, status_code=http_status.HTTP_202_ACCEPTED)
async def stop_job(job_id: Id, _admin: Superuser, session: SessionDep) -> JobRead:
    job = await get_or_404(session, Job, job_id, "job")
    stop_now_or_later(job)
    await session.commit()
    return await read_job(job)


@router.get("/{job_id}/download/")
async def download_job_logs(
    job_id: Id, _admin: Superuser, session: SessionDep
) -> StreamingResponse:
    return await zip_response(await get_or_404(session, Job, job_id, "job"))
