"""The database is the queue: claiming submitted jobs, heartbeats, taking over stale ones.

No two runners ever run one job: a claim is a single guarded UPDATE (with
`FOR UPDATE SKIP LOCKED` on PostgreSQL), and taking over a stale job compares the
previous runner's id and heartbeat, so only one of several runners can win it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..models import Job
from ..services.jobs import job_submitted_hooks


def new_runner_id() -> str:
    """host:pid:random — the host and pid let a runner on the same host see a dead peer."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _now() -> datetime:
    return datetime.now(UTC)


def _pid_alive_here(runner_id: str) -> bool | None:
    """Whether a runner of this host is alive; None when it ran on another host."""
    host, _, rest = runner_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Claimed:
    job_id: int
    resumed: bool  # True when taken over from a runner that died


JOBS = Job.__table__


class JobQueue:
    def __init__(self, engine: AsyncEngine, runner_id: str, stale_after: float) -> None:
        self.engine = engine
        self.runner_id = runner_id
        self.stale_after = stale_after
        self.postgres = engine.dialect.name == "postgresql"

    async def claim_submitted(self) -> Claimed | None:
        # Most polls find nothing: a plain read first, so that polling twice a second does
        # not open a write transaction each time (on SQLite, a lock on the whole database).
        waiting = select(JOBS.c.id).where(JOBS.c.status == "submitted").limit(1)
        async with self.engine.connect() as connection:
            if (await connection.execute(waiting)).first() is None:
                return None
        oldest = select(JOBS.c.id).where(JOBS.c.status == "submitted").order_by(JOBS.c.id).limit(1)
        if self.postgres:
            oldest = oldest.with_for_update(skip_locked=True)
        statement = (
            update(JOBS)
            .where(JOBS.c.id == oldest.scalar_subquery(), JOBS.c.status == "submitted")
            .values(status="running", runner_id=self.runner_id, runner_heartbeat=_now())
            .returning(JOBS.c.id)
        )
        async with self.engine.begin() as connection:
            row = (await connection.execute(statement)).first()
        return Claimed(row[0], resumed=False) if row else None

    async def claim_stale(self) -> Claimed | None:
        """Take over one running or stopping job whose runner is gone."""
        deadline = _now() - timedelta(seconds=self.stale_after)
        query = (
            select(JOBS.c.id, JOBS.c.runner_id, JOBS.c.runner_heartbeat)
            .where(JOBS.c.status.in_(("running", "stopping")))
            .order_by(JOBS.c.id)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        for job_id, owner, heartbeat in rows:
            if owner == self.runner_id:
                continue
            alive = _pid_alive_here(owner or "")
            stale = heartbeat is None or heartbeat < deadline
            if (alive is False or (alive is None and stale)) and await self._take_over(
                job_id, owner, heartbeat
            ):
                return Claimed(job_id, resumed=True)
        return None

    async def _take_over(self, job_id: int, owner: str | None, heartbeat: datetime | None) -> bool:
        statement = (
            update(JOBS)
            .where(
                JOBS.c.id == job_id,
                JOBS.c.status.in_(("running", "stopping")),
                JOBS.c.runner_id.is_not_distinct_from(owner),
                JOBS.c.runner_heartbeat.is_not_distinct_from(heartbeat),
            )
            .values(runner_id=self.runner_id, runner_heartbeat=_now())
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(statement)
        return result.rowcount == 1

    async def heartbeat(self, job_ids: list[int]) -> None:
        if not job_ids:
            return
        statement = (
            update(JOBS)
            .where(JOBS.c.id.in_(job_ids), JOBS.c.runner_id == self.runner_id)
            .values(runner_heartbeat=_now())
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement)

    async def statuses(self, job_ids: list[int]) -> dict[int, str]:
        if not job_ids:
            return {}
        query = select(JOBS.c.id, JOBS.c.status).where(JOBS.c.id.in_(job_ids))
        async with self.engine.connect() as connection:
            return {job_id: status for job_id, status in (await connection.execute(query)).all()}


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
