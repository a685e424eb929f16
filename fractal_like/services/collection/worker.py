"""The collector: a runner's loop that claims pending activities and does their work.

The database is the queue, as for jobs: a claim is one guarded UPDATE (pending → ongoing,
with `FOR UPDATE SKIP LOCKED` on PostgreSQL), the claimant keeps a heartbeat, and an
`ongoing` activity whose runner died (its pid is gone on this host, or its heartbeat is
stale) is taken over by another runner. Deactivate and delete are simply done again; a
collect or reactivate that was cut off midway is undone and marked failed with a plain
message, because a half-run pip cannot be trusted (and a package that kills its runner
would otherwise be retried forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ...db import make_session_factory
from ...models import TaskGroup, TaskGroupActivity
from ...models.task import ActivityAction, ActivityStatus, TaskGroupOrigin
from . import collect, lifecycle, pixi
from .context import ActivityRun
from .log import ActivityLog
from .venv import StepFailedError

logger = logging.getLogger("fractal_like.collection")

ACTIVITIES = TaskGroupActivity.__table__  # type: ignore[attr-defined]
HEARTBEAT_SECONDS = 2.0
STALE_CHECK_SECONDS = 2.0
MAX_CONCURRENT = 2  # pip is heavy on CPU and disk: a few at a time per runner

Work = Callable[[ActivityRun], Awaitable[None]]


def _by_origin(pip_work: Work, pixi_work: Work) -> Work:
    """Work done by pixi for a pixi task group, by pip (and venv) for the others."""

    async def work(run: ActivityRun) -> None:
        async with run.factory() as session:
            group = await session.get(TaskGroup, run.group_id) if run.group_id else None
            origin = group.origin if group is not None else None
        await (pixi_work if origin == TaskGroupOrigin.PIXI else pip_work)(run)

    return work


PIPELINES: dict[str, tuple[Work, Work]] = {
    # A failed pixi collection is undone as a pip one: its folder and its group removed.
    ActivityAction.COLLECT: (_by_origin(collect.collect, pixi.collect_pixi), collect.undo_collect),
    ActivityAction.DEACTIVATE: (
        _by_origin(lifecycle.deactivate, pixi.deactivate_pixi),
        lifecycle.undo_deactivate,
    ),
    ActivityAction.REACTIVATE: (
        _by_origin(lifecycle.reactivate, pixi.reactivate_pixi),
        _by_origin(lifecycle.undo_reactivate, pixi.undo_reinstall_pixi),
    ),
    ActivityAction.DELETE: (lifecycle.delete, lifecycle.undo_delete),
    # A reset that fails is undone as a reactivation is: no half-built venv, still inactive.
    ActivityAction.RESET: (
        _by_origin(lifecycle.reset, pixi.reinstall_pixi),
        _by_origin(lifecycle.undo_reactivate, pixi.undo_reinstall_pixi),
    ),
}
# Work that is safe to do again from the start after an interruption.
RESUMABLE = (ActivityAction.DEACTIVATE, ActivityAction.DELETE)

INTERRUPTED = "interrupted: the server or runner doing this {action} stopped before it finished"


def _now() -> datetime:
    return datetime.now(UTC)


def _owner_alive(runner_id: str) -> bool | None:
    """Whether the runner that claimed it still lives; None when it ran on another host."""
    host, _, rest = runner_id.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Collector:
    def __init__(
        self,
        engine: AsyncEngine,
        runner_id: str,
        *,
        poll_seconds: float,
        stale_after: float,
        private_paths: Callable[[], list[str]] | None = None,
    ) -> None:
        self.engine = engine
        self.private_paths = private_paths  # the server's files collection commands must not reach
        self.factory = make_session_factory(engine)
        self.runner_id = runner_id
        self.poll_seconds = poll_seconds
        self.stale_after = stale_after
        self.postgres = engine.dialect.name == "postgresql"
        self.active: dict[int, asyncio.Task[None]] = {}

    async def run_forever(self) -> None:
        last_beat = last_stale_check = 0.0
        try:
            while True:
                now = time.monotonic()
                try:
                    if now - last_stale_check >= STALE_CHECK_SECONDS:
                        last_stale_check = now
                        await self.take_over_stale()
                    await self.claim_pending()
                    if self.active and now - last_beat >= HEARTBEAT_SECONDS:
                        last_beat = now
                        await self._heartbeat()
                except SQLAlchemyError as error:
                    logger.warning("collector: database busy (%s); retrying", error)
                await asyncio.sleep(self.poll_seconds)
        finally:
            for task in self.active.values():
                task.cancel()
            for task in list(self.active.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # --- Claiming -------------------------------------------------------------------------------

    async def claim_pending(self) -> None:
        while len(self.active) < MAX_CONCURRENT:
            oldest = (
                select(ACTIVITIES.c.id)
                .where(ACTIVITIES.c.status == ActivityStatus.PENDING)
                .order_by(ACTIVITIES.c.id)
                .limit(1)
            )
            # A read first: most polls find nothing, and must not take SQLite's write lock.
            async with self.engine.connect() as connection:
                if (await connection.execute(oldest)).first() is None:
                    return
            if self.postgres:
                oldest = oldest.with_for_update(skip_locked=True)
            statement = (
                update(ACTIVITIES)
                .where(
                    ACTIVITIES.c.id == oldest.scalar_subquery(),
                    ACTIVITIES.c.status == ActivityStatus.PENDING,
                )
                .values(
                    status=ActivityStatus.ONGOING,
                    runner_id=self.runner_id,
                    runner_heartbeat=_now(),
                )
                .returning(ACTIVITIES.c.id)
            )
            async with self.engine.begin() as connection:
                row = (await connection.execute(statement)).first()
            if row is None:
                return
            self._start(row[0], resumed=False)

    async def take_over_stale(self) -> None:
        """Finish the `ongoing` activities of runners that died."""
        deadline = _now() - timedelta(seconds=self.stale_after)
        query = select(
            ACTIVITIES.c.id, ACTIVITIES.c.runner_id, ACTIVITIES.c.runner_heartbeat
        ).where(ACTIVITIES.c.status == ActivityStatus.ONGOING)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        for activity_id, owner, heartbeat in rows:
            if owner == self.runner_id or len(self.active) >= MAX_CONCURRENT:
                continue
            stale = heartbeat is None or heartbeat < deadline
            # A live pid with a stale heartbeat is a reused pid (or a hung runner): take over.
            if not (stale or _owner_alive(owner or "") is False):
                continue
            statement = (
                update(ACTIVITIES)
                .where(
                    ACTIVITIES.c.id == activity_id,
                    ACTIVITIES.c.status == ActivityStatus.ONGOING,
                    ACTIVITIES.c.runner_id.is_not_distinct_from(owner),
                    ACTIVITIES.c.runner_heartbeat.is_not_distinct_from(heartbeat),
                )
                .values(runner_id=self.runner_id, runner_heartbeat=_now())
            )
            async with self.engine.begin() as connection:
                taken = (await connection.execute(statement)).rowcount == 1
            if taken:
                self._start(activity_id, resumed=True)

    def _start(self, activity_id: int, *, resumed: bool) -> None:
        task = asyncio.create_task(self._process(activity_id, resumed=resumed))
        self.active[activity_id] = task
        task.add_done_callback(lambda _t: self.active.pop(activity_id, None))

    async def _heartbeat(self) -> None:
        statement = (
            update(ACTIVITIES)
            .where(ACTIVITIES.c.id.in_(list(self.active)), ACTIVITIES.c.runner_id == self.runner_id)
            .values(runner_heartbeat=_now())
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement)

    # --- Doing the work -------------------------------------------------------------------------

    async def _process(self, activity_id: int, *, resumed: bool) -> None:
        try:
            run = await self._run_of(activity_id)
            if run is None:
                return
            work, undo = PIPELINES[run.action]
            if resumed and run.action not in RESUMABLE:
                await run.log.add(INTERRUPTED.format(action=run.action))
                await self._undo(run, undo)
                await self._finish(run, ActivityStatus.FAILED)
                return
            if resumed:
                await run.log.add(INTERRUPTED.format(action=run.action) + "; doing it again")
            try:
                await work(run)
            except StepFailedError as error:
                await run.log.add(f"FAILED: {error}")
            except Exception as error:  # a bug must still end the activity, never leave it ongoing
                logger.exception("activity %s failed unexpectedly", activity_id)
                await run.log.add(f"FAILED: internal error ({type(error).__name__}: {error})")
            else:
                await self._finish(run, ActivityStatus.OK)
                return
            await self._undo(run, undo)
            await self._finish(run, ActivityStatus.FAILED)
        except asyncio.CancelledError:
            raise  # shutdown: the next runner finds it ongoing with a dead owner
        except Exception:
            logger.exception("collector could not record the end of activity %s", activity_id)

    async def _run_of(self, activity_id: int) -> ActivityRun | None:
        async with self.factory() as session:
            activity = await session.get(TaskGroupActivity, activity_id)
            if activity is None or activity.id is None:
                return None
            run = ActivityRun(
                engine=self.engine,
                factory=self.factory,
                activity_id=activity.id,
                action=activity.action,
                user_id=activity.user_id,
                group_id=activity.taskgroupv2_id,
                log=ActivityLog(self.engine, activity.id, activity.log),
                private_paths=self.private_paths() if self.private_paths else None,
            )
        if run.action not in PIPELINES:
            await run.log.add(f"unknown action {run.action!r}")
            await self._finish(run, ActivityStatus.FAILED)
            return None
        return run

    async def _undo(self, run: ActivityRun, undo: Work) -> None:
        try:
            await undo(run)
        except Exception as error:
            logger.exception("undoing activity %s failed", run.activity_id)
            await run.log.add(f"cleaning up failed too: {type(error).__name__}: {error}")

    async def _finish(self, run: ActivityRun, status: ActivityStatus) -> None:
        # The last line first: whoever sees the final status also sees why.
        await run.log.add(f"{run.action} {'done' if status == ActivityStatus.OK else 'failed'}")
        async with self.factory() as session:
            activity = await session.get(TaskGroupActivity, run.activity_id)
            if activity is None:
                return
            activity.status = status
            activity.timestamp_ended = _now()
            activity.runner_heartbeat = None
            if status == ActivityStatus.FAILED and run.action == ActivityAction.COLLECT:
                activity.taskgroupv2_id = None  # the group it created is gone
            await session.commit()
