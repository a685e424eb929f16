"""Claims on a real database, for both work queues (jobs and task-collection activities):
racing claimers, dead owners taken over, live ones kept, heartbeats that keep a claim."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from fractal_like.db import make_async_engine, make_session_factory
from fractal_like.models import Job, JobStatus, TaskGroupActivity
from fractal_like.models.security import UserOAuth
from fractal_like.models.task import ActivityAction, ActivityStatus
from fractal_like.runner.claims import Claimed, Claims, new_runner_id
from fractal_like.runner.collection.collector import Collector
from fractal_like.runner.jobs import JobQueue

STALE_AFTER = 30.0


@dataclass(frozen=True)
class Queue:
    """One of the two work queues, as a runner builds its claims on it."""

    claims: Callable[[AsyncEngine, str], Claims]
    model: type[Job] | type[TaskGroupActivity]
    waiting: str
    claimed: str
    held_too: str | None  # another status in which a row stays its owner's
    ended: str


def _job_claims(engine: AsyncEngine, runner_id: str) -> Claims:
    return JobQueue(engine, runner_id, stale_after=STALE_AFTER)


def _activity_claims(engine: AsyncEngine, runner_id: str) -> Claims:
    return Collector(engine, runner_id, poll_seconds=1, stale_after=STALE_AFTER).claims


QUEUES = {
    "jobs": Queue(
        _job_claims,
        Job,
        JobStatus.SUBMITTED,
        JobStatus.RUNNING,
        held_too=JobStatus.STOPPING,
        ended=JobStatus.FAILED,
    ),
    "activities": Queue(
        _activity_claims,
        TaskGroupActivity,
        ActivityStatus.PENDING,
        ActivityStatus.ONGOING,
        held_too=None,
        ended=ActivityStatus.FAILED,
    ),
}


@pytest.fixture(params=list(QUEUES))
def queue(request: pytest.FixtureRequest) -> Queue:
    return QUEUES[request.param]


def _run(db_url: str, scene: Callable[[AsyncEngine], Awaitable[None]]) -> None:
    """Run an async test scene against the database, with an engine of its own."""

    async def go() -> None:
        engine = make_async_engine(db_url)
        try:
            await scene(engine)
        finally:
            await engine.dispose()

    asyncio.run(go())


async def _add_rows(
    engine: AsyncEngine,
    queue: Queue,
    count: int,
    status: str,
    owner: str | None = None,
    heartbeat: datetime | None = None,
) -> list[int]:
    factory = make_session_factory(engine)
    async with factory() as session:
        rows: list[Job | TaskGroupActivity] = []
        for _ in range(count):
            claim = {"status": status, "runner_id": owner, "runner_heartbeat": heartbeat}
            if queue.model is Job:
                rows.append(
                    Job(user_email="x@example.org", first_task_index=0, last_task_index=0, **claim)
                )
            else:
                user = (await session.execute(select(UserOAuth).limit(1))).scalar_one_or_none()
                if user is None:
                    user = UserOAuth(email="x@example.org", hashed_password="-")
                    session.add(user)
                    await session.flush()
                assert user.id is not None
                rows.append(
                    TaskGroupActivity(
                        user_id=user.id, pkg_name="pkg", action=ActivityAction.COLLECT, **claim
                    )
                )
        session.add_all(rows)
        await session.commit()
        return [row.id for row in rows if row.id is not None]


async def _owners(engine: AsyncEngine, queue: Queue) -> dict[int, tuple[str, str | None]]:
    table = queue.model.__table__  # type: ignore[attr-defined]
    query = select(table.c.id, table.c.status, table.c.runner_id)
    async with engine.connect() as connection:
        return {
            row_id: (status, owner) for row_id, status, owner in await connection.execute(query)
        }


async def _heartbeat_of(engine: AsyncEngine, queue: Queue, row_id: int) -> datetime | None:
    table = queue.model.__table__  # type: ignore[attr-defined]
    query = select(table.c.runner_heartbeat).where(table.c.id == row_id)
    async with engine.connect() as connection:
        return (await connection.execute(query)).scalar_one()


async def _age_heartbeats(engine: AsyncEngine, queue: Queue, by: timedelta) -> None:
    table = queue.model.__table__  # type: ignore[attr-defined]
    async with engine.begin() as connection:
        await connection.execute(update(table).values(runner_heartbeat=datetime.now(UTC) - by))


def _dead_runner_id() -> str:
    """The id a runner of this host had, whose process has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:gone"


async def _all_of(claimed: AsyncIterator[Claimed]) -> list[Claimed]:
    return [item async for item in claimed]


async def _claim_until_empty(claims: Claims) -> list[int]:
    won = []
    while (claimed := await claims.claim_waiting()) is not None:
        assert claimed.resumed is False
        won.append(claimed.id)
        await asyncio.sleep(0)  # let the other claimers in between
    return won


async def _race(
    db_url: str, queue: Queue, attempt: Callable[[Claims], Awaitable[list[int]]]
) -> list[list[int]]:
    """Four runners, each with its own engine (its own connections), racing."""
    engines = [make_async_engine(db_url) for _ in range(4)]
    try:
        return await asyncio.gather(
            *(attempt(queue.claims(engine, new_runner_id())) for engine in engines)
        )
    finally:
        for engine in engines:
            await engine.dispose()


def test_racing_claimers_win_each_waiting_row_once(db_url: str, queue: Queue) -> None:
    async def scene(engine: AsyncEngine) -> None:
        row_ids = await _add_rows(engine, queue, 30, queue.waiting)
        results = await _race(db_url, queue, _claim_until_empty)
        won = [row_id for result in results for row_id in result]
        assert sorted(won) == sorted(row_ids), "every row claimed exactly once"
        owners = await _owners(engine, queue)
        assert {status for status, _ in owners.values()} == {queue.claimed}

    _run(db_url, scene)


def test_racing_claimers_take_each_abandoned_row_over_once(db_url: str, queue: Queue) -> None:
    async def scene(engine: AsyncEngine) -> None:
        row_ids = await _add_rows(
            engine, queue, 20, queue.claimed, _dead_runner_id(), datetime.now(UTC)
        )

        async def take_over(claims: Claims) -> list[int]:
            taken = await _all_of(claims.take_over_abandoned(room=100))
            assert all(claimed.resumed for claimed in taken)
            return [claimed.id for claimed in taken]

        results = await _race(db_url, queue, take_over)
        taken = [row_id for result in results for row_id in result]
        assert sorted(taken) == sorted(row_ids), "every abandoned row taken over exactly once"

    _run(db_url, scene)


def test_a_dead_owners_claim_is_taken_over_a_live_ones_not(db_url: str, queue: Queue) -> None:
    async def scene(engine: AsyncEngine) -> None:
        fresh, silent = datetime.now(UTC), datetime.now(UTC) - timedelta(hours=1)
        live_here = f"{socket.gethostname()}:{os.getpid()}:live"
        elsewhere = "elsewhere.example.org:1:x"
        kept = [
            *await _add_rows(engine, queue, 1, queue.claimed, live_here, fresh),
            *await _add_rows(engine, queue, 1, queue.claimed, elsewhere, fresh),
        ]
        abandoned = [
            # its process is gone: taken over at once, however fresh its heartbeat
            *await _add_rows(engine, queue, 1, queue.claimed, _dead_runner_id(), fresh),
            # silent for an hour: another host's, or this host's with a live pid (reused, or hung)
            *await _add_rows(engine, queue, 1, queue.claimed, elsewhere, silent),
            *await _add_rows(engine, queue, 1, queue.claimed, live_here, silent),
            *await _add_rows(engine, queue, 1, queue.claimed, None, None),
        ]
        if queue.held_too is not None:
            abandoned += await _add_rows(engine, queue, 1, queue.held_too, elsewhere, silent)
        await _add_rows(engine, queue, 1, queue.ended, elsewhere, silent)  # nobody's work now

        claims = queue.claims(engine, new_runner_id())
        taken = await _all_of(claims.take_over_abandoned(room=100))
        assert sorted(claimed.id for claimed in taken) == sorted(abandoned)
        assert all(claimed.resumed for claimed in taken)
        owners = await _owners(engine, queue)
        for row_id in abandoned:
            assert owners[row_id][1] == claims.runner_id
        for row_id in kept:
            assert owners[row_id][1] != claims.runner_id
        if queue.held_too is not None:
            assert owners[abandoned[-1]][0] == queue.held_too, "a take-over keeps the status"
        assert await _all_of(claims.take_over_abandoned(room=100)) == [], "its own claims stay"

    _run(db_url, scene)


def test_a_heartbeat_keeps_a_claim(db_url: str, queue: Queue) -> None:
    async def scene(engine: AsyncEngine) -> None:
        (row_id,) = await _add_rows(engine, queue, 1, queue.waiting)
        owner = queue.claims(engine, new_runner_id())
        rival = queue.claims(engine, new_runner_id())
        assert await owner.claim_waiting() == Claimed(row_id, resumed=False)

        await _age_heartbeats(engine, queue, timedelta(hours=1))
        await owner.heartbeat([row_id])
        assert await _all_of(rival.take_over_abandoned(room=1)) == []

        await _age_heartbeats(engine, queue, timedelta(hours=1))  # the owner fell silent
        assert await _all_of(rival.take_over_abandoned(room=1)) == [Claimed(row_id, resumed=True)]
        rivals_beat = await _heartbeat_of(engine, queue, row_id)
        await owner.heartbeat([row_id])  # too late: it is the rival's now
        assert (await _owners(engine, queue))[row_id] == (queue.claimed, rival.runner_id)
        assert await _heartbeat_of(engine, queue, row_id) == rivals_beat

    _run(db_url, scene)


def test_claim_takes_abandoned_rows_first_and_no_more_than_room(db_url: str, queue: Queue) -> None:
    async def scene(engine: AsyncEngine) -> None:
        waiting = await _add_rows(engine, queue, 3, queue.waiting)
        abandoned = await _add_rows(engine, queue, 1, queue.claimed, _dead_runner_id(), None)
        claims = queue.claims(engine, new_runner_id())
        first = await _all_of(claims.claim(room=2))
        assert first == [Claimed(abandoned[0], resumed=True), Claimed(waiting[0], resumed=False)]
        assert await _all_of(claims.claim(room=0)) == []
        rest = await _all_of(claims.claim(room=5))
        assert rest == [Claimed(row_id, resumed=False) for row_id in waiting[1:]]

    _run(db_url, scene)
