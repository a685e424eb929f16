"""What each user's jobs used: written by the runner as a job ends, read by superusers.

A record is the bill, not the job: it keeps the job's id but outlives the job's row.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from itertools import chain

from sqlalchemy import ColumnElement, func, insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import (
    AccountingRecord,
    AccountingRecordSlurm,
    HistoryRun,
    HistoryUnit,
    Job,
    Resource,
    SlurmJob,
    table_of,
)
from ..schemas.accounting import AccountingQuery, AccountingQuerySLURM
from .pages import page_of

logger = logging.getLogger("fractal_like.accounting")


async def record_ended_job(
    connection: AsyncConnection, job_id: int, resource_id: int | None, num_new_images: int
) -> None:
    """Record an ended job (done or failed) in the connection's transaction.

    num_tasks counts the job's units, as Fractal counts task calls (a unit that ran
    before a runner restart counts too). num_new_images is what the ending runner saw
    created: no column keeps that count across a restart, so a resumed job's record
    counts the images of the tasks it ran since. A job on a SLURM resource also gets
    one record of the SLURM job ids it submitted (possibly none). A failure here is
    logged and rolled back to a savepoint: the bill must never keep a job from ending.
    """
    try:
        async with connection.begin_nested():
            await _record(connection, job_id, resource_id, num_new_images)
    except (SQLAlchemyError, ValueError):
        logger.exception("job %s: its accounting record could not be written", job_id)


async def _record(
    connection: AsyncConnection, job_id: int, resource_id: int | None, num_new_images: int
) -> None:
    user_id = (
        await connection.execute(
            select(table_of(Job).c.user_id).where(table_of(Job).c.id == job_id)
        )
    ).scalar_one_or_none()
    if user_id is None:  # its user was deleted meanwhile: nobody to bill
        return
    units = (
        select(func.count())
        .select_from(HistoryUnit)
        .join(HistoryRun, col(HistoryRun.id) == HistoryUnit.history_run_id)
        .where(HistoryRun.job_id == job_id)
    )
    num_tasks = (await connection.execute(units)).scalar_one()
    now = datetime.now(UTC)
    common = {"user_id": user_id, "job_id": job_id, "resource_id": resource_id, "timestamp": now}
    await connection.execute(
        insert(AccountingRecord).values(
            **common, num_tasks=num_tasks, num_new_images=num_new_images
        )
    )
    resource_type = (
        await connection.execute(select(Resource.type).where(col(Resource.id) == resource_id))
    ).scalar_one_or_none()
    if resource_type not in ("slurm_sudo", "slurm_ssh"):
        return
    submitted = await connection.execute(
        select(SlurmJob.slurm_job_id)
        .where(SlurmJob.job_id == job_id, col(SlurmJob.slurm_job_id).is_not(None))
        .order_by(col(SlurmJob.id))
    )
    slurm_ids = sorted({int(value) for value in submitted.scalars() if value.isdigit()})
    await connection.execute(
        insert(AccountingRecordSlurm).values(**common, slurm_job_ids=slurm_ids)
    )


def _conditions(
    model: type[AccountingRecord] | type[AccountingRecordSlurm], query: AccountingQuery
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.user_id is not None:
        where.append(col(model.user_id) == query.user_id)
    if query.fractal_job_id is not None:
        where.append(col(model.job_id) == query.fractal_job_id)
    if query.timestamp_min is not None:
        where.append(col(model.timestamp) >= query.timestamp_min)
    if query.timestamp_max is not None:
        where.append(col(model.timestamp) <= query.timestamp_max)
    return where


async def list_records(
    session: AsyncSession, query: AccountingQuery, page: int, page_size: int | None
) -> tuple[int, int, list[AccountingRecord]]:
    """(total, page size, the page) of the records matching the query, oldest first."""
    statement = (
        select(AccountingRecord)
        .where(*_conditions(AccountingRecord, query))
        .order_by(col(AccountingRecord.id))
    )
    return await page_of(session, statement, page, page_size)


async def slurm_job_ids(session: AsyncSession, query: AccountingQuerySLURM) -> list[int]:
    """Every SLURM job id of the matching records, as one flat list."""
    statement = (
        select(AccountingRecordSlurm.slurm_job_ids)
        .where(*_conditions(AccountingRecordSlurm, query))
        .order_by(col(AccountingRecordSlurm.id))
    )
    if query.resource_id is not None:
        statement = statement.where(col(AccountingRecordSlurm.resource_id) == query.resource_id)
    return list(chain.from_iterable((await session.exec(statement)).all()))
