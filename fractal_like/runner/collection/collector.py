"""The collector: a runner's loop that claims pending activities and does their work.

The database is the queue, as for jobs (see `runner.claims`): a pending activity is
claimed as ongoing, the claimant keeps a heartbeat, and an ongoing activity whose runner
is no longer alive is taken over by another runner. Deactivate and delete are simply done
again; a collect or reactivate that was cut off midway is undone and marked failed with a
plain message, because a half-run pip cannot be trusted (and a package that kills its
runner would otherwise be retried forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ...db import make_session_factory
from ...models import TaskGroupActivity, table_of
from ...models.task import ActivityAction, ActivityStatus
from ...services.collection.context import ActivityRun
from ...services.collection.log import ActivityLog
from ...services.collection.place import StepFailedError
from ..claims import Claims
from ..slurm.ssh_host import SshHostRegistry
from .pipelines import PIPELINES, RESUMABLE, Work

logger = logging.getLogger("fractal_like.collection")

ACTIVITIES = table_of(TaskGroupActivity)
MAX_CONCURRENT = 2  # pip is heavy on CPU and disk: a few at a time per runner

INTERRUPTED = "interrupted: the server or runner doing this {action} stopped before it finished"


class Collector:
    def __init__(
        self,
        engine: AsyncEngine,
        runner_id: str,
        *,
        poll_seconds: float,
        stale_after: float,
        private_paths: Callable[[], list[str]] | None = None,
        ssh: SshHostRegistry | None = None,
    ) -> None:
        self.engine = engine
        # SSH connections to the login nodes of slurm_ssh resources: the runner's own, shared
        # with its jobs; or, when none is given, the collector's, closed when it stops.
        self.ssh = ssh or SshHostRegistry()
        self._owns_ssh = ssh is None
        self.private_paths = private_paths  # the server's files collection commands must not reach
        self.factory = make_session_factory(engine)
        self.poll_seconds = poll_seconds
        self.claims = Claims(
            engine,
            ACTIVITIES,
            waiting=ActivityStatus.PENDING,
            claimed=ActivityStatus.ONGOING,
            held=(ActivityStatus.ONGOING,),
            runner_id=runner_id,
            stale_after=stale_after,
        )
        self.active: dict[int, asyncio.Task[None]] = {}

    async def run_forever(self) -> None:
        try:
            while True:
                try:
                    async for claimed in self.claims.claim(MAX_CONCURRENT - len(self.active)):
                        self._start(claimed.id, resumed=claimed.resumed)
                    await self.claims.heartbeat_when_due(self.active)
                except SQLAlchemyError as error:
                    logger.warning("collector: database busy (%s); retrying", error)
                await asyncio.sleep(self.poll_seconds)
        finally:
            for task in self.active.values():
                task.cancel()
            for task in list(self.active.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._owns_ssh:
                await self.ssh.close()

    def _start(self, activity_id: int, *, resumed: bool) -> None:
        task = asyncio.create_task(self._process(activity_id, resumed=resumed))
        self.active[activity_id] = task
        task.add_done_callback(lambda _t: self.active.pop(activity_id, None))

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
                ssh=self.ssh,
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
            activity.timestamp_ended = datetime.now(UTC)
            activity.runner_heartbeat = None
            if status == ActivityStatus.FAILED and run.action == ActivityAction.COLLECT:
                activity.taskgroupv2_id = None  # the group it created is gone
            await session.commit()
