"""Runners' claims on the rows of a database work queue: jobs, task-collection activities.

The database is the queue. A row waits (a `submitted` job, a `pending` activity) until a
runner claims it; from then on the row names its owner (`runner_id`) and the owner keeps
a heartbeat (`runner_heartbeat`) while it works. When the owner is no longer alive,
another runner takes the row over and finishes the work.

Every change of owner is one guarded UPDATE: its WHERE clause holds only while the row
is still waiting (or still held by the very owner and heartbeat this runner judged
dead), so when several runners race for one row exactly one UPDATE changes it, and the
row it returns tells that runner it won. On PostgreSQL the oldest waiting row is also
picked with `FOR UPDATE SKIP LOCKED`, so racing runners spread over the waiting rows
instead of all aiming at the first one.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

HEARTBEAT_SECONDS = 2.0
TAKE_OVER_CHECK_SECONDS = 2.0


def new_runner_id() -> str:
    """host:pid:random; the host and pid let a runner of the same host see a dead owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _now() -> datetime:
    return datetime.now(UTC)


def _process_gone(runner_id: str) -> bool:
    """Whether the runner ran on this host and its process no longer exists."""
    host, _, rest = runner_id.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's process cannot be seen from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, under another account
    return False


def owner_alive(owner: str | None, heartbeat: datetime | None, deadline: datetime) -> bool:
    """Whether the runner holding a claim still does the work: its heartbeat is not older
    than `deadline` and, when it ran on this host, its process exists.

    Of the two rules the queues had, this is the stricter one (the collector's): the job
    queue also kept a claim whose heartbeat was stale while a process of its pid lived
    here. But a pid proves little (pids are reused, and a hung runner keeps its own),
    and a runner of another host is judged by its heartbeat alone anyway: a gone process
    only lets the verdict come before the heartbeat goes stale.
    """
    if owner is None or heartbeat is None or heartbeat < deadline:
        return False
    return not _process_gone(owner)


@dataclass(frozen=True)
class Claimed:
    id: int
    resumed: bool  # taken over from an owner that died, so its work may be half done


class Claims:
    """One runner's claims on one table's rows.

    `waiting` is the status of unclaimed rows, `claimed` the status a claim sets, and
    `held` the statuses in which a row belongs to its owner (a stopping job still does).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        *,
        waiting: str,
        claimed: str,
        held: tuple[str, ...],
        runner_id: str,
        stale_after: float,
    ) -> None:
        self.engine = engine
        self.table = table
        self.waiting = waiting
        self.claimed = claimed
        self.held = held
        self.runner_id = runner_id
        self.stale_after = stale_after
        self.postgres = engine.dialect.name == "postgresql"
        self._next_take_over_check = 0.0
        self._next_heartbeat = 0.0

    async def claim(self, room: int) -> AsyncIterator[Claimed]:
        """Up to `room` rows for this runner: abandoned ones first (looked for every
        TAKE_OVER_CHECK_SECONDS), then waiting ones, oldest first.

        One at a time, so that the caller starts the work of each before the next claim:
        if the database fails midway, no row is left claimed with nobody working on it."""
        count = 0
        now = time.monotonic()
        if room > 0 and now >= self._next_take_over_check:
            self._next_take_over_check = now + TAKE_OVER_CHECK_SECONDS
            async for taken in self.take_over_abandoned(room):
                count += 1
                yield taken
        while count < room and (waiting := await self.claim_waiting()) is not None:
            count += 1
            yield waiting

    async def claim_waiting(self) -> Claimed | None:
        """The oldest waiting row, unless another runner wins it first."""
        table = self.table
        oldest = (
            select(table.c.id).where(table.c.status == self.waiting).order_by(table.c.id).limit(1)
        )
        # Most polls find nothing: a plain read first, so that polling does not open a write
        # transaction each time (on SQLite, a lock on the whole database).
        async with self.engine.connect() as connection:
            if (await connection.execute(oldest)).first() is None:
                return None
        if self.postgres:
            oldest = oldest.with_for_update(skip_locked=True)
        won = await self._take(
            (table.c.id == oldest.scalar_subquery()) & (table.c.status == self.waiting),
            status=self.claimed,
        )
        return None if won is None else Claimed(won, resumed=False)

    async def take_over_abandoned(self, room: int) -> AsyncIterator[Claimed]:
        """Up to `room` held rows whose owner is not alive (see `owner_alive`)."""
        table = self.table
        deadline = _now() - timedelta(seconds=self.stale_after)
        held = (
            select(table.c.id, table.c.runner_id, table.c.runner_heartbeat)
            .where(table.c.status.in_(self.held))
            .order_by(table.c.id)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(held)).all()
        count = 0
        for row_id, owner, heartbeat in rows:
            if count >= room:
                return
            if owner == self.runner_id or owner_alive(owner, heartbeat, deadline):
                continue
            # Still the owner and heartbeat seen above: no other runner took it meanwhile.
            won = await self._take(
                (table.c.id == row_id)
                & table.c.status.in_(self.held)
                & table.c.runner_id.is_not_distinct_from(owner)
                & table.c.runner_heartbeat.is_not_distinct_from(heartbeat)
            )
            if won is not None:
                count += 1
                yield Claimed(won, resumed=True)

    async def _take(self, guard: ColumnElement[bool], **values: str) -> int | None:
        """The guarded UPDATE that makes this runner the owner: the id of the row it won."""
        statement = (
            update(self.table)
            .where(guard)
            .values(runner_id=self.runner_id, runner_heartbeat=_now(), **values)
            .returning(self.table.c.id)
        )
        async with self.engine.begin() as connection:
            row = (await connection.execute(statement)).first()
        return None if row is None else row[0]

    async def heartbeat(self, row_ids: Iterable[int]) -> None:
        """Tell other runners that this one still works on these rows (those it still owns)."""
        ids = list(row_ids)
        if not ids:
            return
        statement = (
            update(self.table)
            .where(self.table.c.id.in_(ids), self.table.c.runner_id == self.runner_id)
            .values(runner_heartbeat=_now())
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement)

    async def heartbeat_when_due(self, row_ids: Iterable[int]) -> None:
        """`heartbeat`, at most every HEARTBEAT_SECONDS: a runner's loop calls it each turn."""
        ids = list(row_ids)
        now = time.monotonic()
        if ids and now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_SECONDS
            await self.heartbeat(ids)
