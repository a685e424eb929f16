"""The job queue: `submitted` jobs claimed as `running` (see `claims`), their statuses
read back for stop requests, and the wake-up that an in-process submit gives the runner."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..models import Job, JobStatus, table_of
from ..services.jobs import job_submitted_hooks
from .claims import Claims

JOBS = table_of(Job)


class JobQueue(Claims):
    """A runner's claims on jobs; a `stopping` job still belongs to its runner."""

    def __init__(self, engine: AsyncEngine, runner_id: str, stale_after: float) -> None:
        super().__init__(
            engine,
            JOBS,
            waiting=JobStatus.SUBMITTED,
            claimed=JobStatus.RUNNING,
            held=(JobStatus.RUNNING, JobStatus.STOPPING),
            runner_id=runner_id,
            stale_after=stale_after,
        )

    async def statuses(self, job_ids: list[int]) -> dict[int, JobStatus]:
        if not job_ids:
            return {}
        query = select(JOBS.c.id, JOBS.c.status).where(JOBS.c.id.in_(job_ids))
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return {job_id: JobStatus(status) for job_id, status in rows}


class Wakeup:
    """The runner's wait between polls, cut short when a job is submitted in this process.

    The submit route calls `services.jobs.notify_job_submitted` after its commit, from the
    API's event loop (maybe another thread than the runner's): the embedded runner claims
    the job at once instead of up to a poll interval later. Runners in other processes
    still find jobs by polling."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        job_submitted_hooks.append(self._wake)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            job_submitted_hooks.remove(self._wake)

    def _wake(self) -> None:
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # the runner's loop is already closed
                self.loop.call_soon_threadsafe(self.event.set)

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)
        self.event.clear()
