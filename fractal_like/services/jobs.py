"""Submitting jobs: every check Fractal makes, the snapshots, and the working folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import (
    ACTIVE_JOB_STATUSES,
    Dataset,
    Job,
    JobStatus,
    Profile,
    Project,
    Resource,
    TaskGroup,
    UserOAuth,
    Workflow,
)
from ..schemas.job import JobCreate
from ..worker_init import WorkerInitError, local_refusal, needs_shell, parse_worker_init
from .errors import ForbiddenError, InvalidError, UnavailableError
from .slurm_associations import check_accounts
from .slurm_limits import check_job_limits
from .tasks import usable_task
from .workflows import workflow_tasks

STOPPED_BY_USER = "stopped by user"
# A runner in this process (the embedded one) registers here to claim a job as soon as it
# is committed, instead of at its next poll; runners elsewhere still find it by polling.
job_submitted_hooks: list[Callable[[], None]] = []


def notify_job_submitted() -> None:
    """Call after committing a submitted job."""
    for hook in list(job_submitted_hooks):
        hook()


def _iso(value: datetime) -> str:
    return value.isoformat()


async def resource_of(session: AsyncSession, user: UserOAuth) -> tuple[Profile, Resource]:
    profile = await session.get(Profile, user.profile_id) if user.profile_id else None
    if profile is None:
        raise ForbiddenError(f"user {user.email} has no computing profile")
    resource = await session.get(Resource, profile.resource_id)
    assert resource is not None
    return profile, resource


def _task_range(payload: JobCreate, count: int) -> tuple[int, int]:
    if count == 0:
        raise InvalidError("the workflow has no tasks: add some before submitting")
    first = payload.first_task_index if payload.first_task_index is not None else 0
    last = payload.last_task_index if payload.last_task_index is not None else count - 1
    if not 0 <= first <= last < count:
        raise InvalidError(
            f"first_task_index={first} and last_task_index={last} do not fit a workflow "
            f"of {count} tasks (0 <= first <= last <= {count - 1})",
        )
    return first, last


def _check_worker_init(text: str | None, resource: Resource) -> None:
    """Refuse at submit what the resource could not apply, rather than drop it at run time."""
    try:
        lines = parse_worker_init(text)  # the schema checked it already; kept as a guard
    except WorkerInitError as error:
        raise InvalidError(str(error)) from None
    shell = needs_shell(lines)
    if resource.type == "local" and shell:
        raise InvalidError(local_refusal(shell[0]))


def _account(user: UserOAuth, requested: str | None) -> str | None:
    if requested is None:
        return user.slurm_accounts[0] if user.slurm_accounts else None
    if requested not in user.slurm_accounts:
        raise InvalidError(
            f"slurm_account {requested!r} is not one of your accounts "
            f"({', '.join(user.slurm_accounts) or 'none'})",
        )
    return requested


async def submit(
    session: AsyncSession,
    user: UserOAuth,
    project: Project,
    workflow: Workflow,
    dataset: Dataset,
    payload: JobCreate,
) -> Job:
    profile, resource = await resource_of(session, user)
    if resource.prevent_new_submissions:
        raise InvalidError(f"resource {resource.name!r} does not accept new jobs right now")
    assert workflow.id is not None and dataset.id is not None and project.id is not None
    tasks = await workflow_tasks(session, workflow.id)
    first, last = _task_range(payload, len(tasks))
    _check_worker_init(payload.worker_init, resource)
    # Access may have been revoked, or a task group deactivated, since the workflow was built.
    for _wftask, task, group in tasks[first : last + 1]:
        assert task.id is not None
        await usable_task(session, user, task.id)
        if group.resource_id is not None and group.resource_id != resource.id:
            # Its environment was built for that resource's machines: here it would not run.
            raise InvalidError(
                f"task {task.name!r} belongs to task group {group.id}, collected for another "
                f"resource than yours ({resource.name!r}): collect it again with your current "
                "profile, or ask an admin to move you back",
            )
    busy = await session.exec(
        select(Job.id).where(Job.dataset_id == dataset.id, col(Job.status).in_(ACTIVE_JOB_STATUSES))
    )
    running = busy.first()
    if running is not None:
        raise InvalidError(
            f"dataset {dataset.id} already has an active job ({running}): wait for it "
            "or stop it first",
        )
    account = _account(user, payload.slurm_account)
    if account is not None:  # associations change in SLURM: checked again at each submit
        associations = await check_accounts(session, profile.id, [account])
        if associations is not None and profile.username:
            await check_job_limits(
                session,
                resource,
                profile.username,
                account,
                associations,
                tasks[first : last + 1],
                dataset.id,
                payload.type_filters,
                payload.attribute_filters,
            )
    assert user.id is not None
    job = Job(
        project_id=project.id,
        workflow_id=workflow.id,
        dataset_id=dataset.id,
        user_id=user.id,
        user_email=user.email,
        slurm_account=account,
        worker_init=payload.worker_init,
        first_task_index=first,
        last_task_index=last,
        attribute_filters=payload.attribute_filters,
        type_filters=payload.type_filters,
        project_dump=_project_dump(project),
        workflow_dump=_workflow_dump(workflow, tasks),
        dataset_dump=_dataset_dump(dataset),
        status=JobStatus.SUBMITTED,
    )
    session.add(job)
    await session.flush()
    assert job.id is not None
    folder = _folder_name(project.id, workflow.id, job.id, job.start_timestamp)
    job.working_dir = str(Path(resource.jobs_local_dir) / folder)
    remote_root = profile.jobs_remote_dir or resource.jobs_local_dir
    job.working_dir_user = str(Path(remote_root) / folder)
    for group in {group.id: group for _, _, group in tasks[first : last + 1]}.values():
        group.timestamp_last_used = job.start_timestamp
    try:
        os.makedirs(job.working_dir, exist_ok=False)
    except OSError as error:
        raise UnavailableError(
            f"cannot create the job folder in {resource.jobs_local_dir!r} of resource "
            f"{resource.name!r} ({error.strerror}): tell an admin",
        ) from error
    return job


def _folder_name(project_id: int, workflow_id: int, job_id: int, when: datetime) -> str:
    stamp = when.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    return f"proj_v2_{project_id:07d}_wf_{workflow_id:07d}_job_{job_id:07d}_{stamp}"


def _project_dump(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "timestamp_created": _iso(project.timestamp_created),
    }


def _dataset_dump(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "name": dataset.name,
        "project_id": dataset.project_id,
        "timestamp_created": _iso(dataset.timestamp_created),
        "zarr_dir": dataset.zarr_dir,
    }


def _workflow_dump(workflow: Workflow, tasks: list[tuple[Any, Any, TaskGroup]]) -> dict[str, Any]:
    return {
        "id": workflow.id,
        "name": workflow.name,
        "project_id": workflow.project_id,
        "timestamp_created": _iso(workflow.timestamp_created),
        "task_list": [
            {
                "id": wftask.id,
                "order": wftask.order,
                "task_id": task.id,
                "task_name": task.name,
                "task_type": task.type,
                "pkg_name": group.pkg_name,
                "version": group.version,
                "args_non_parallel": wftask.args_non_parallel,
                "args_parallel": wftask.args_parallel,
                "meta_non_parallel": wftask.meta_non_parallel,
                "meta_parallel": wftask.meta_parallel,
                # The task's own meta (from its manifest), under the workflow task's: the
                # runner reads warm_start there.
                "task_meta_non_parallel": task.meta_non_parallel,
                "task_meta_parallel": task.meta_parallel,
                "type_filters": wftask.type_filters,
                "command_non_parallel": task.command_non_parallel,
                "command_parallel": task.command_parallel,
                "input_types": task.input_types,
                "output_types": task.output_types,
            }
            for wftask, task, group in tasks
        ],
    }


def stop_now_or_later(job: Job) -> None:
    """A job nobody runs yet ends at once; a running one is left to its runner to cancel."""
    if job.status == JobStatus.SUBMITTED:
        job.status = JobStatus.FAILED
        job.end_timestamp = datetime.now(UTC)
        job.log = (job.log or "") + f"Job {STOPPED_BY_USER} before it started.\n"
    elif job.status == JobStatus.RUNNING:
        job.status = JobStatus.STOPPING
    elif job.status == JobStatus.STOPPING:
        return
    else:
        raise InvalidError(f"job {job.id} has already ended ({job.status})")


async def jobs_where(
    session: AsyncSession,
    *,
    user_id: int | None = None,
    project_id: int | None = None,
    workflow_id: int | None = None,
) -> list[Job]:
    """The jobs of a user, a project or a workflow (the filters given), by id."""
    query = select(Job).order_by(col(Job.id))
    if user_id is not None:
        query = query.where(Job.user_id == user_id)
    if project_id is not None:
        query = query.where(Job.project_id == project_id)
    if workflow_id is not None:
        query = query.where(Job.workflow_id == workflow_id)
    return list((await session.exec(query)).all())
