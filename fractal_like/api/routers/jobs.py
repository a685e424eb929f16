"""Jobs: submit, list, show, stop, download."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import StreamingResponse
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from ...models import ACTIVE_JOB_STATUSES, Dataset, Job, Workflow
from ...schemas._base import Id
from ...schemas.job import JobCreate, JobRead
from ...services import jobs as service
from ...services.access import Need, child_of_project, project_for
from ...services.job_files import iter_chunks, read_live_log, zip_folders
from ..deps import SessionDep
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
    project_id: Id,
    workflow_id: Id,
    dataset_id: Id,
    payload: JobCreate,
    user: ApiUser,
    session: SessionDep,
) -> JobRead:
    project, _ = await project_for(session, user, project_id, Need.EXECUTE)
    workflow = await child_of_project(session, Workflow, workflow_id, project_id, "workflow")
    dataset = await child_of_project(session, Dataset, dataset_id, project_id, "dataset")
    job = await service.submit(session, user, project, workflow, dataset, payload)
    await session.commit()
    service.notify_job_submitted()
    return _read(job)


@router.get("/job/", response_model=list[JobRead])
async def list_my_jobs(user: ApiUser, session: SessionDep, log: bool = True) -> list[JobRead]:
    query = select(Job).where(Job.user_id == user.id).order_by(col(Job.id))
    return [_read(job, with_log=log) for job in (await session.exec(query)).all()]


@router.get("/project/{project_id}/job/", response_model=list[JobRead])
async def list_project_jobs(
    project_id: Id, user: ApiUser, session: SessionDep, log: bool = True
) -> list[JobRead]:
    await project_for(session, user, project_id)
    query = select(Job).where(Job.project_id == project_id).order_by(col(Job.id))
    return [_read(job, with_log=log) for job in (await session.exec(query)).all()]


@router.get("/project/{project_id}/workflow/{workflow_id}/job/", response_model=list[JobRead])
async def list_workflow_jobs(
    project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> list[JobRead]:
    await project_for(session, user, project_id)
    await child_of_project(session, Workflow, workflow_id, project_id, "workflow")
    query = select(Job).where(Job.workflow_id == workflow_id).order_by(col(Job.id))
    return [_read(job) for job in (await session.exec(query)).all()]


async def _job(session: SessionDep, project_id: Id, job_id: Id) -> Job:
    job = await session.get(Job, job_id)
    if job is None or job.project_id != project_id:
        raise HTTPException(404, detail=f"job {job_id} not found in project {project_id}")
    return job


@router.get("/project/{project_id}/job/{job_id}/", response_model=JobRead)
async def get_job(
    project_id: Id,
    job_id: Id,
    user: ApiUser,
    session: SessionDep,
    show_tmp_logs: bool = False,
) -> JobRead:
    await project_for(session, user, project_id)
    return await read_job(await _job(session, project_id, job_id), show_tmp_logs)


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
async def stop_job(project_id: Id, job_id: Id, user: ApiUser, session: SessionDep) -> JobRead:
    await project_for(session, user, project_id, Need.EXECUTE)
    job = await _job(session, project_id, job_id)
    service.stop_now_or_later(job)
    await session.commit()
    return _read(job)


@router.get("/project/{project_id}/job/{job_id}/download/")
async def download_job_logs(
    project_id: Id, job_id: Id, user: ApiUser, session: SessionDep
) -> StreamingResponse:
    await project_for(session, user, project_id)
    return await zip_response(await _job(session, project_id, job_id))


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
