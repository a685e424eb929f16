"""Records what each ended SLURM job used (slurmusage rows), from sacct, in the background.

The runner's SLURM jobs are `slurmjob` rows; once a row has ended, sacct is asked for its
usage until it answers (slurmdbd may lag behind the queue by a few seconds) or the row is
older than GIVE_UP_AFTER. One sacct call serves every pending job of one place: this
machine for slurm_sudo, each SSH login (over the runner's shared connection) for
slurm_ssh. Two runners may record the same job at once: the unique slurmjob_id keeps one
row, the other insert is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ...models import HistoryRun, Job, Profile, Resource, SlurmJob, SlurmUsage, UserOAuth, table_of
from ...slurm_config import SlurmConfig
from .facilities import SlurmFacilities, SshLogin, ssh_login
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
USER = table_of(UserOAuth)
PROFILE = table_of(Profile)
RESOURCE = table_of(Resource)


class UsageRecorder:
    def __init__(
        self,
        engine: AsyncEngine,
        poll_seconds: float = POLL_SECONDS,
        slurm: SlurmFacilities | None = None,  # the runner's SSH connections, to share them
    ) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.slurm = slurm or SlurmFacilities()

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
        by_place: dict[SshLogin | None, list[dict[str, Any]]] = {}
        for row in pending:
            by_place.setdefault(_where(row), []).append(row)
        rows: list[dict[str, Any]] = []
        refused: SlurmCommandError | None = None
        for login, waiting in by_place.items():
            where = login.host(self.slurm.ssh) if login is not None else None
            try:
                usage = await read_usage([row["slurm_job_id"] for row in waiting], where)
            except SlurmCommandError as error:
                refused = error  # the other places are still asked
                continue
            rows.extend(
                _usage_row(row, usage[row["slurm_job_id"]])
                for row in waiting
                if row["slurm_job_id"] in usage
            )
        recorded = await self._insert(rows)
        if refused is not None:
            raise refused
        return recorded

    async def _insert(self, rows: list[dict[str, Any]]) -> int:
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
                RESOURCE.c.type.label("resource_type"),
                RESOURCE.c.name.label("resource_name"),
                RESOURCE.c.host,
                RESOURCE.c.jobs_runner_config,
                PROFILE.c.name.label("profile_name"),
                PROFILE.c.username,
                PROFILE.c.ssh_key_path,
            )
            .join(RUN, RUN.c.id == SLURMJOB.c.history_run_id)
            .join(JOB, JOB.c.id == SLURMJOB.c.job_id)
            # Where sacct is asked: the resource of the user's profile (the job's own).
            .outerjoin(USER, USER.c.id == JOB.c.user_id)
            .outerjoin(PROFILE, PROFILE.c.id == USER.c.profile_id)
            .outerjoin(RESOURCE, RESOURCE.c.id == PROFILE.c.resource_id)
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


def _where(row: dict[str, Any]) -> SshLogin | None:
    """The SSH login whose sacct knows the job; None for this machine's."""
    if row["resource_type"] != "slurm_ssh":
        return None
    try:
        config = SlurmConfig.model_validate(row["jobs_runner_config"])
        resource = Resource(
            name=row["resource_name"],
            type="slurm_ssh",
            host=row["host"],
            jobs_local_dir="",
            tasks_local_dir="",
        )
        profile = Profile(
            resource_id=0,
            name=row["profile_name"],
            resource_type="slurm_ssh",
            username=row["username"],
            ssh_key_path=row["ssh_key_path"],
        )
        return ssh_login(resource, profile, config)
    except ValueError as error:  # pydantic's ValidationError is one
        logger.warning("usage of SLURM job %s not readable: %s", row["slurm_job_id"], error)
        return None


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
