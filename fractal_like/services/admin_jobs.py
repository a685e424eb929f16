"""Every user's jobs, for superusers: the filtered list, and failing a stuck job by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import (
    ACTIVE_JOB_STATUSES,
    HistoryRun,
    HistoryUnit,
    Job,
    JobStatus,
    LinkUserProject,
    Profile,
    UnitStatus,
    UserOAuth,
)
from .errors import InvalidError
from .pages import page_of

# Statuses of runs and units that have ended; the others fail with their job.
_FINAL = (JobStatus.DONE, JobStatus.FAILED)


@dataclass
class JobFilters:
    """The reference's filters of GET /admin/v2/job/; None means "any"."""

    id: int | None = None
    resource_id: int | None = None
    project_owner_id: int | None = None
    job_user_email: str | None = None
    project_id: int | None = None
    dataset_id: int | None = None
    workflow_id: int | None = None
    status: str | None = None
    start_timestamp_min: datetime | None = None
    start_timestamp_max: datetime | None = None
    end_timestamp_min: datetime | None = None
    end_timestamp_max: datetime | None = None


def _conditions(filters: JobFilters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    equal = {
        col(Job.id): filters.id,
        col(Job.project_id): filters.project_id,
        col(Job.dataset_id): filters.dataset_id,
        col(Job.workflow_id): filters.workflow_id,
        col(Job.user_email): filters.job_user_email,
    }
    where.extend(column == value for column, value in equal.items() if value is not None)
    if filters.status is not None:
        # Fractal's `submitted` covers every live job (running and stopping read as it).
        live = filters.status == JobStatus.SUBMITTED
        where.append(col(Job.status).in_(ACTIVE_JOB_STATUSES if live else (filters.status,)))
    if filters.project_owner_id is not None:
        owned = select(LinkUserProject.project_id).where(
            LinkUserProject.user_id == filters.project_owner_id,
            col(LinkUserProject.is_owner).is_(True),
        )
        where.append(col(Job.project_id).in_(owned))
    if filters.resource_id is not None:
        # Jobs do not record their resource: a job belongs to the resource of its user's
        # profile (the one it was submitted to, unless an admin moved the user since).
        users = (
            select(UserOAuth.id)
            .join(Profile, col(Profile.id) == col(UserOAuth.profile_id))
            .where(Profile.resource_id == filters.resource_id)
        )
        where.append(col(Job.user_id).in_(users))
    bounds = (
        (col(Job.start_timestamp), filters.start_timestamp_min, filters.start_timestamp_max),
        (col(Job.end_timestamp), filters.end_timestamp_min, filters.end_timestamp_max),
    )
    for column, low, high in bounds:
        if low is not None:
            where.append(column >= low)
        if high is not None:
            where.append(column <= high)
    return where


async def list_jobs(
    session: AsyncSession, filters: JobFilters, page: int, page_size: int | None
) -> tuple[int, int, list[Job]]:
    """(total count, page size, the page's jobs), newest first."""
    query = (
        select(Job)
        .where(*_conditions(filters))
        .order_by(col(Job.start_timestamp).desc(), col(Job.id).desc())
    )
    return await page_of(session, query, page, page_size)


async def set_status(session: AsyncSession, job: Job, new_status: str) -> None:
    """An admin's way out for a job stuck before its end: mark it failed, nothing else.

    As in Fractal, only `failed` may be set, and only on a job that has not ended. The
    job's runner is let go of it (runner_id cleared), so a runner that wakes up later
    cannot overwrite the admin's verdict; its open history runs and units fail with it.
    """
    if job.status not in ACTIVE_JOB_STATUSES:
        raise InvalidError(f"Job {job.id} has status {job.status!r} and cannot be updated.")
    if new_status != JobStatus.FAILED:
        raise InvalidError(f"Cannot set job status to {new_status!r}: only 'failed' is allowed.")
    now = datetime.now(UTC)
    job.status = JobStatus.FAILED
    job.end_timestamp = now
    job.runner_id = None
    job.log = (job.log or "") + (
        f"\nThis job was manually marked as 'failed' by an admin ({now.isoformat()}).\n"
    )
    runs = select(HistoryRun.id).where(HistoryRun.job_id == job.id)
    await session.execute(
        update(HistoryUnit)
        .where(
            col(HistoryUnit.history_run_id).in_(runs),
            col(HistoryUnit.status).not_in(_FINAL),
        )
        .values(status=JobStatus.FAILED, timestamp_ended=now)
    )
    # The runs' counters follow their units, as the runner keeps them.
    failed_units = (
        select(func.count())
        .select_from(HistoryUnit)
        .where(HistoryUnit.history_run_id == HistoryRun.id, HistoryUnit.status == UnitStatus.FAILED)
        .scalar_subquery()
    )
    await session.execute(
        update(HistoryRun)
        .where(col(HistoryRun.job_id) == job.id, col(HistoryRun.status).not_in(_FINAL))
        .values(status=UnitStatus.FAILED, timestamp_ended=now, num_units_failed=failed_units)
    )
