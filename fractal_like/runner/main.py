"""A runner: claims jobs from the database, runs them, keeps their heartbeats, stops them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Settings
from ..db import make_async_engine, make_session_factory
from ..models import JobStatus
from .claims import new_runner_id
from .collection.collector import Collector
from .jobs import JobQueue, Wakeup
from .node import sandbox
from .server_files import private_paths
from .slurm.usage_recorder import UsageRecorder
from .workflow_run import WorkflowRunner

logger = logging.getLogger("fractal_like.runner")
# How often running jobs are checked for a stop request: a query a second, not one per poll
# (it ran every 0.5 s for the whole length of every job).
STOP_CHECK_SECONDS = 1.0


class Runner:
    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_async_engine(settings.database_url)
        self._owns_engine = engine is None
        self.runner_id = new_runner_id()
        self.queue = JobQueue(self.engine, self.runner_id, settings.RUNNER_STALE_SECONDS)
        self.workflow_runner = WorkflowRunner(
            self.engine,
            make_session_factory(self.engine),
            self.runner_id,
            settings.RUNNER_PARALLELISM,
            private_paths=lambda: private_paths(settings),
        )
        self.active: dict[int, tuple[asyncio.Task[str], asyncio.Event]] = {}
        # Task collection (and the task-group lifecycle) is claimed from the same database.
        self.collector = Collector(
            self.engine,
            self.runner_id,
            poll_seconds=settings.RUNNER_POLL_SECONDS,
            stale_after=settings.RUNNER_STALE_SECONDS,
            private_paths=lambda: private_paths(settings),
            ssh=self.workflow_runner.slurm.ssh,  # one connection per login, jobs and venvs
        )
        # What ended SLURM jobs used, from sacct (idle when no SLURM job is waiting for it).
        self.usage_recorder = UsageRecorder(self.engine, slurm=self.workflow_runner.slurm)

    async def run_forever(self) -> None:
        logger.info("runner %s started", self.runner_id)
        _protect_this_process()
        last_stop_check = 0.0
        wakeup = Wakeup()
        wakeup.start()
        collector = asyncio.create_task(self.collector.run_forever())
        usage_recorder = asyncio.create_task(self.usage_recorder.run_forever())
        try:
            while True:
                now = time.monotonic()
                try:
                    await self._claim()
                    await self.queue.heartbeat_when_due(self.active)
                    if self.active and now - last_stop_check >= STOP_CHECK_SECONDS:
                        last_stop_check = now
                        await self._watch_stops()
                except SQLAlchemyError as error:
                    # e.g. "database is locked" during a long SQLite write: try again later
                    # instead of letting the runner die beside a live server.
                    logger.warning("runner %s: database busy (%s); retrying", self.runner_id, error)
                await wakeup.wait(self.settings.RUNNER_POLL_SECONDS)
        finally:
            wakeup.close()
            for background in (collector, usage_recorder):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await background
            for task, _ in self.active.values():
                task.cancel()
            for task, _ in list(self.active.values()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            # SLURM jobs go on; a new runner reattaches.
            await self.workflow_runner.slurm.close()
            if self._owns_engine:
                await self.engine.dispose()

    async def _claim(self) -> None:
        async for claimed in self.queue.claim(self.settings.RUNNER_MAX_JOBS - len(self.active)):
            stop = asyncio.Event()
            task = asyncio.create_task(
                self.workflow_runner.run_job(claimed.id, stop, resumed=claimed.resumed)
            )
            self.active[claimed.id] = (task, stop)
            task.add_done_callback(functools.partial(self._forget, claimed.id))

    def _forget(self, job_id: int, _task: asyncio.Task[str]) -> None:
        self.active.pop(job_id, None)

    async def _watch_stops(self) -> None:
        if not self.active:
            return
        for job_id, status in (await self.queue.statuses(list(self.active))).items():
            if status == JobStatus.STOPPING and job_id in self.active:
                self.active[job_id][1].set()


def _protect_this_process() -> None:
    """Units of our own account must not read our environment or memory (the server's
    secrets, when the runner is embedded in it); say once if they could reach our files."""
    try:
        sandbox.make_undumpable()
    except OSError as error:
        logger.warning("cannot hide the runner's memory from its units: %s", error)
    abi = sandbox.landlock_abi()
    if abi < sandbox.MIN_ABI:
        logger.warning(
            "this kernel has no Landlock ABI %s (Linux 5.19; it has %s): units of a local "
            "resource without a username can read the server's files (JWT secret, SQLite "
            "database)",
            sandbox.MIN_ABI,
            abi or "none",
        )
