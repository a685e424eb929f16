"""Records what each ended SLURM job used (slurmusage rows), from sacct, in the background.

The runner's SLURM jobs are `slurmjob` rows; once a row has ended, sacct is asked for its
usage until it answers (slurmdbd may lag behind the queue by a few seconds) or the row is
older than GIVE_UP_AFTER. One sacct call serves every pending job. Two runners may record
the same job at once: the unique slurmjob_id keeps one row, the other insert is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ...models import HistoryRun, Job, SlurmJob, SlurmUsage, table_of
from .process import SlurmCommandError
from .usage import JobUsage, read_usage

logger = logging.getLogger("fractal_like.runner.slurm.usage")
GIVE_UP_AFTER = timedelta(days=3)
BATCH = 200
POLL_SECONDS = 30.0
# sacct refused (no accounting storage, say): ask again this much later, not every poll.
REFUSED_BACKOFF_SECONDS = 600.0

SLURMJOB = table_of(SlurmJob)
RUN = table_of(HistoryRun)
JOB = table_of(Job)
USAGE = table_of(SlurmUsage)


class UsageRecorder:
    def __init__(self, engine: AsyncEngine, poll_seconds: float = POLL_SECONDS) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds

    async def run_forever(self) -> None:
        while True:
            delay = self.poll_seconds
            try:
                await self.record_once()
            except SlurmCommandError as error:
                logger.warning("job usage not recorded: %s; asking sacct again later", error)
                delay = REFUSED_BACKOFF_SECONDS
            except SQLAlchemyError as error:
                logger.warning("job usage not recorded (database: %s); retrying", error)
            await asyncio.sleep(delay)

    async def record_once(self) -> int:
        """Record the usage of every ended SLURM job sacct knows; returns how many."""
        pending = await self._pending()
        if not pending:
            return 0
        usage = await read_usage([row["slurm_job_id"] for row in pending])
        rows = [
            _usage_row(row, usage[row["slurm_job_id"]])
            for row in pending
            if row["slurm_job_id"] in usage
        ]
        recorded = 0
        for row in rows:
            try:
                async with self.engine.begin() as connection:
                    await connection.execute(insert(USAGE).values(**row))
                recorded += 1
            except IntegrityError:
                pass  # another runner recorded it first
        return recorded

    async def _pending(self) -> list[dict[str, Any]]:
        since = datetime.now(UTC) - GIVE_UP_AFTER
        statement = (
            select(
                SLURMJOB.c.id,
                SLURMJOB.c.slurm_job_id,
                SLURMJOB.c.job_id,
                SLURMJOB.c.unit_ids,
                SLURMJOB.c.parallel_units,
                RUN.c.workflowtask_id,
                RUN.c.task_id,
                JOB.c.user_id,
            )
            .join(RUN, RUN.c.id == SLURMJOB.c.history_run_id)
            .join(JOB, JOB.c.id == SLURMJOB.c.job_id)
            .where(
                SLURMJOB.c.status == "ended",
                SLURMJOB.c.slurm_job_id.is_not(None),
                SLURMJOB.c.timestamp_created >= since,
                JOB.c.user_id.is_not(None),
                ~exists().where(USAGE.c.slurmjob_id == SLURMJOB.c.id),
            )
            .order_by(SLURMJOB.c.id)
            .limit(BATCH)
        )
        async with self.engine.connect() as connection:
            return [dict(row._mapping) for row in await connection.execute(statement)]


def _usage_row(pending: dict[str, Any], usage: JobUsage) -> dict[str, Any]:
    num_units = len(pending["unit_ids"] or [])
    return {
        "user_id": pending["user_id"],
        "job_id": pending["job_id"],
        "slurmjob_id": pending["id"],
        "workflowtask_id": pending["workflowtask_id"],
        "task_id": pending["task_id"],
        "slurm_job_id": usage.slurm_job_id,
        "account": usage.account,
        "partition": usage.partition,
        "state": usage.state,
        "num_units": num_units,
        "parallel_units": max(1, pending["parallel_units"] or 1),
        "elapsed_seconds": usage.elapsed_seconds,
        "cpu_seconds": usage.cpu_seconds,
        "alloc_cpus": usage.alloc_cpus,
        "max_rss_bytes": usage.max_rss_bytes,
        "req_mem_bytes": usage.req_mem_bytes,
        "time_limit_seconds": usage.time_limit_seconds,
        "timestamp_ended": usage.ended,
        "timestamp_recorded": datetime.now(UTC),
    }
