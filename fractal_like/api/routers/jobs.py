"""Jobs: submit, list, show, stop, download."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...models import ACTIVE_JOB_STATUSES, Job
from ...schemas._base import Id
from ...schemas.job import JobCreate, JobRead
from ...services import jobs as service
from ...services.job_files import iter_chunks, read_live_log, zip_folders
from ..deps import SessionDep
from ..ownership import (
    ExecuteDataset,
    ExecuteJob,
    ExecuteProject,
    ExecuteWorkflow,
    ReadJob,
    ReadProject,
    ReadWorkflow,
)
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(prefix="/api/v2", tags=["jobs"], route_class=GuardedRoute)


def _read(job: Job, live_log: str | None = None, with_log: bool = True) -> JobRead:
    data = JobRead.model_validate(job)
    data.log = live_log or data.log
    if not with_log:
        data.log = None
    return data


@router.post(
    "/project/{project_id}/job/submit/",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def submit_job(
    access: ExecuteProject,
    workflow: ExecuteWorkflow,
    dataset: ExecuteDataset,
    project_id: Id,
    workflow_id: Id,
    dataset_id: Id,
    payload: JobCreate,
    user: ApiUser,
    session: SessionDep,
) -> JobRead:
    project, _ = access
    job = await service.submit(session, user, project, workflow, dataset, payload)
    await session.commit()
    service.notify_job_submitted()
    return _read(job)


@router.get("/job/", response_model=list[JobRead])
async def list_my_jobs(user: ApiUser, session: SessionDep, log: bool = True) -> list[JobRead]:
    jobs = await service.jobs_where(session, user_id=user.id)
    return [_read(job, with_log=log) for job in jobs]


@router.get("/project/{project_id}/job/", response_model=list[JobRead])
async def list_project_jobs(
    _access: ReadProject, project_id: Id, user: ApiUser, session: SessionDep, log: bool = True
) -> list[JobRead]:
    jobs = await service.jobs_where(session, project_id=project_id)
    return [_read(job, with_log=log) for job in jobs]


@router.get("/project/{project_id}/workflow/{workflow_id}/job/", response_model=list[JobRead])
async def list_workflow_jobs(
    _workflow: ReadWorkflow, project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> list[JobRead]:
    return [_read(job) for job in await service.jobs_where(session, workflow_id=workflow_id)]


@router.get("/project/{project_id}/job/{job_id}/", response_model=JobRead)
async def get_job(
    job: ReadJob,
    project_id: Id,
    job_id: Id,
    user: ApiUser,
    session: SessionDep,
    show_tmp_logs: bool = False,
) -> JobRead:
    return await read_job(job, show_tmp_logs)


async def read_job(job: Job, show_tmp_logs: bool = False) -> JobRead:
    """One job as shown to its users and to admins; an active job's log read live if asked."""
    live_log = None
    if show_tmp_logs and job.status in ACTIVE_JOB_STATUSES:
        live_log = await run_in_threadpool(read_live_log, job.working_dir)
    return _read(job, live_log)


@router.get(
    "/project/{project_id}/job/{job_id}/stop/",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
)
async def stop_job(
    job: ExecuteJob, project_id: Id, job_id: Id, user: ApiUser, session: SessionDep
) -> JobRead:
    service.stop_now_or_later(job)
    await session.commit()
    return _read(job)


@router.get("/project/{project_id}/job/{job_id}/download/")
async def download_job_logs(
    job: ReadJob, project_id: Id, job_id: Id, user: ApiUser, session: SessionDep
) -> StreamingResponse:
    return await zip_response(job)


async def zip_response(job: Job) -> StreamingResponse:
    """The job's folders as a zip (users' and admins' download routes)."""
    # Zipped by a thread into a spooled file, sent chunk by chunk from threads: a job
    # folder of any size never stalls the event loop nor sits whole in memory.
    archive = await run_in_threadpool(zip_folders, job.working_dir, job.working_dir_user)
    name = f"job_{job.id}_logs.zip"
    return StreamingResponse(
        iter_chunks(archive),
        media_type="application/x-zip-compressed",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
