"""Runs one job: its workflow tasks in order, unit by unit, merging image-list changes.

Restart safety: a task's units are rows in the database before any of them runs, and
each unit leaves an exit-code file written by its own wrapper. A runner that resumes a
job skips tasks whose run is done, takes the result of every unit that already ended
from its files, waits for units still running, and runs only the rest. Image changes
and the run's `done` status are committed in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Job, JobStatus, Profile, Resource, UnitStatus, UserOAuth, table_of
from ..services.accounting import record_ended_job
from ..services.image_updates import ImageChangeError, apply_image_changes
from ..services.images import query_images
from . import history_recorder as history
from .accounts import AccountCommandError
from .executors.base import Executor, ExecutorUnavailableError, TaskInfo, UnitResult
from .executors.select import RunnerFacilities, executor_for
from .joblog import JobLog
from .slurm.facilities import SlurmFacilities
from .snapshot import JobSnapshot, SnapshotError, SnapshotWorkflowTask
from .taskcall import (
    TaskOutput,
    TaskOutputError,
    UnitCall,
    UnitFiles,
    log_tail,
    read_exit_code,
    read_init_output,
    read_task_output,
)
from .warm_choice import warm_wanted

logger = logging.getLogger("fractal_like.runner")
STOPPED_BY_USER = "stopped by user"
JOBS = table_of(Job)
FLUSH_SECONDS = 1.0  # results reach the history at most this late (each flush is a transaction)
CONVERTERS = ("converter_non_parallel", "converter_compound")


class JobFailedError(Exception):
    """The job cannot go on; the message says why in plain words."""


class JobStoppedError(Exception):
    pass


@dataclass
class UnitSpec:
    kind: str  # "non_parallel", "init" or "parallel"
    index: int
    command: str
    args: dict[str, Any]
    zarr_urls: list[str]

    @property
    def prefix(self) -> str:
        return {"non_parallel": "non_par", "init": "init"}.get(self.kind, f"par_{self.index:06d}")


@dataclass
class JobContext:
    job: Job
    working_dir: Path
    dataset_id: int
    log: JobLog
    stop: asyncio.Event
    resource_id: int | None = None
    new_images: int = 0  # created by this runner's part of the job (accounting)
    # Set once the job passed its checks; a job that fails them ends without them.
    snapshot: JobSnapshot = field(init=False)
    executor: Executor = field(init=False)

    @property
    def zarr_dir(self) -> str:
        return self.snapshot.zarr_dir

    @property
    def user_dir(self) -> Path:
        """Where the units write: their account's folder of the job when they run as one."""
        if self.executor.runs_as_account:
            return Path(self.job.working_dir_user or self.working_dir)
        return self.working_dir


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:60] or "task"


class WorkflowRunner:
    """Runs the jobs this runner claimed, each from its workflow snapshot to its end."""

    def __init__(
        self,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        runner_id: str,
        parallelism: int | None = None,
        private_paths: Callable[[], list[str]] | None = None,
    ) -> None:
        self.engine = engine
        self.session_factory = session_factory
        self.runner_id = runner_id
        self.slurm = SlurmFacilities()  # pollers and SSH connections of all its SLURM jobs
        # private_paths: the server's files that local units must not reach (None: units are
        # not confined).
        self.facilities = RunnerFacilities(engine, self.slurm, parallelism, private_paths)

    async def run_job(self, job_id: int, stop: asyncio.Event, resumed: bool = False) -> JobStatus:
        """Run (or resume) a claimed job to its end; returns its final status."""
        async with self.session_factory() as session:
            job = await session.get(Job, job_id)
            assert job is not None
            user = await session.get(UserOAuth, job.user_id) if job.user_id else None
            profile = (
                await session.get(Profile, user.profile_id) if user and user.profile_id else None
            )
            resource = await session.get(Resource, profile.resource_id) if profile else None
        working_dir = Path(job.working_dir or "")
        working_dir.mkdir(parents=True, exist_ok=True)
        log = JobLog(working_dir)
        ctx = JobContext(
            job=job,
            working_dir=working_dir,
            dataset_id=job.dataset_id or 0,
            log=log,
            stop=stop,
            resource_id=resource.id if resource is not None else None,
        )
        log.write(
            f"{'Resuming' if resumed else 'Starting'} job {job_id} on runner {self.runner_id}"
        )
        try:
            if job.dataset_id is None:
                raise JobFailedError("the job's dataset was deleted before the job could run")
            if job.status == JobStatus.STOPPING:
                raise JobStoppedError
            ctx.snapshot = JobSnapshot.of(job)
            ctx.executor = executor_for(job, resource, profile, self.facilities)
            await ctx.executor.prepare_job(ctx.zarr_dir)
            type_filters = dict(job.type_filters)
            for wftask in ctx.snapshot.workflow_tasks:
                type_filters = await self._run_task(ctx, wftask, type_filters)
        except JobStoppedError:
            log.write(f"Job {STOPPED_BY_USER}.")
            return await self._finish(ctx, JobStatus.FAILED, STOPPED_BY_USER)
        except (JobFailedError, SnapshotError, ExecutorUnavailableError) as error:
            log.write(f"Job failed: {error}")
            return await self._finish(ctx, JobStatus.FAILED, str(error))
        except Exception as error:  # a bug of ours: say so plainly, keep the traceback
            logger.exception("job %s failed with an internal error", job_id)
            log.write(f"Job failed: internal error of the runner ({error!r})")
            return await self._finish(
                ctx, JobStatus.FAILED, f"internal error: {error!r}\n{traceback.format_exc()}"
            )
        log.write("Job done.")
        return await self._finish(ctx, JobStatus.DONE, None)

    async def _finish(self, ctx: JobContext, status: JobStatus, error: str | None) -> JobStatus:
        job_id = ctx.job.id or 0
        async with self.engine.begin() as connection:
            ended = await connection.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.runner_id == self.runner_id)
                .values(
                    status=status,
                    end_timestamp=datetime.now(UTC),
                    log=ctx.log.read(),
                    executor_error_log=error,
                )
            )
            if ended.rowcount:  # this runner ended it (not an admin before): bill it once
                await record_ended_job(connection, job_id, ctx.resource_id, ctx.new_images)
        return status

    async def _run_task(
        self, ctx: JobContext, wftask: SnapshotWorkflowTask, type_filters: dict[str, bool]
    ) -> dict[str, bool]:
        name = wftask.task.name
        task_type = wftask.task.type
        after = {**type_filters, **wftask.task.output_types}
        async with self.engine.begin() as connection:
            run_id, status = await history.find_or_create_run(
                connection, ctx.job.id or 0, ctx.dataset_id, wftask.stored
            )
        if status == UnitStatus.DONE:
            ctx.log.write(f"Task {wftask.order} '{name}' was done before the restart.")
            return after
        filters = {**type_filters, **wftask.task.input_types, **wftask.type_filters}
        async with self.session_factory() as session:
            images = await query_images(
                session, ctx.dataset_id, filters, ctx.job.attribute_filters or {}
            )
        zarr_urls = [image.zarr_url for image in images]
        if not zarr_urls and task_type not in CONVERTERS:
            raise JobFailedError(
                f"task {wftask.order} '{name}' has no input images: no image of the dataset "
                f"passes the type filters {filters} and attribute filters "
                f"{ctx.job.attribute_filters or {}}"
            )
        folder_name = f"{wftask.order}_{_slug(name)}"
        # The units write as their account, into a folder that account owns.
        try:
            folder = await ctx.executor.prepare_folder(ctx.user_dir / folder_name)
        except AccountCommandError as error:
            raise JobFailedError(str(error)) from None
        ctx.log.write(
            f"Task {wftask.order} '{name}' ({task_type}) starts on {len(zarr_urls)} image(s)."
        )
        outputs = await self._run_units_of(ctx, wftask, run_id, folder, zarr_urls)
        updates: list[dict[str, Any]] = []
        removals: list[str] = []
        latest: dict[str, int] = {}
        for unit_id, spec, output in outputs:
            updates.extend(item.model_dump(exclude_none=True) for item in output.image_list_updates)
            removals.extend(output.image_list_removals)
            for url in spec.zarr_urls:
                latest[url] = unit_id
            for item in output.image_list_updates:
                latest[item.zarr_url] = unit_id
        if not updates and not removals:
            updates = [{"zarr_url": url} for url in zarr_urls]  # "inputs updated"
        async with self.session_factory() as session:
            try:
                summary = await apply_image_changes(
                    session,
                    ctx.dataset_id,
                    ctx.zarr_dir,
                    updates,
                    removals,
                    output_types=wftask.task.output_types,
                )
            except ImageChangeError as error:
                await session.rollback()
                async with self.engine.begin() as connection:
                    await history.finish_run(connection, run_id, UnitStatus.FAILED)
                raise JobFailedError(f"task {wftask.order} '{name}': {error}") from None
            connection = await session.connection()
            removed = set(removals)
            await history.remember_latest_units(
                connection,
                ctx.dataset_id,
                wftask.id,
                {url: unit for url, unit in latest.items() if url not in removed},
            )
            await history.finish_run(connection, run_id, UnitStatus.DONE)
            await session.commit()
        ctx.new_images += summary.created
        ctx.log.write(
            f"Task {wftask.order} '{name}' done: {summary.created} image(s) created, "
            f"{summary.updated} updated, {summary.removed} removed."
        )
        return after

    async def _run_units_of(
        self,
        ctx: JobContext,
        wftask: SnapshotWorkflowTask,
        run_id: int,
        folder: Path,
        zarr_urls: list[str],
    ) -> list[tuple[int, UnitSpec, TaskOutput]]:
        task = wftask.task
        args_p = wftask.args_parallel
        base_np = {"zarr_dir": ctx.zarr_dir, **wftask.args_non_parallel}
        if task.type not in CONVERTERS:
            base_np = {"zarr_urls": zarr_urls, **base_np}
        if task.type in ("non_parallel", "converter_non_parallel"):
            spec = UnitSpec("non_parallel", 0, task.command(parallel=False), base_np, zarr_urls)
            return await self._execute(ctx, wftask, run_id, folder, [spec], read_task_output)
        if task.type == "parallel":
            command = task.command(parallel=True)
            specs = [
                UnitSpec("parallel", i, command, {"zarr_url": url, **args_p}, [url])
                for i, url in enumerate(zarr_urls)
            ]
            return await self._execute(ctx, wftask, run_id, folder, specs, read_task_output)
        # compound and converter_compound: an init step, then one unit per item it lists.
        init = UnitSpec("init", 0, task.command(parallel=False), base_np, zarr_urls)
        ((_, _, init_output),) = await self._execute(
            ctx, wftask, run_id, folder, [init], read_init_output
        )
        seen: set[str] = set()
        specs = []
        for item in init_output.parallelization_list:
            key = f"{item.zarr_url}\x00{sorted(item.init_args.items())}"
            if key in seen:
                continue
            seen.add(key)
            args = {"zarr_url": item.zarr_url, "init_args": item.init_args, **args_p}
            specs.append(
                UnitSpec("parallel", len(specs), task.command(parallel=True), args, [item.zarr_url])
            )
        if not specs:
            return []
        return await self._execute(ctx, wftask, run_id, folder, specs, read_task_output)

    async def _execute(
        self,
        ctx: JobContext,
        wftask: SnapshotWorkflowTask,
        run_id: int,
        folder: Path,
        specs: list[UnitSpec],
        reader: Callable[[UnitFiles], Any],
    ) -> list[tuple[int, UnitSpec, Any]]:
        """Run the units (skipping those that already ended), then read their outputs."""
        async with self.engine.begin() as connection:
            known = await history.existing_units(connection, run_id)
            missing = [spec for spec in specs if (spec.kind, spec.index) not in known]
            if missing:
                created = await history.create_units(
                    connection,
                    run_id,
                    [
                        {
                            "kind": spec.kind,
                            "index": spec.index,
                            "zarr_urls": spec.zarr_urls,
                            "logfile": str(folder / f"{spec.prefix}-log.txt"),
                            "warm": False,
                        }
                        for spec in missing
                    ],
                )
                known.update(
                    {key: (unit_id, UnitStatus.SUBMITTED) for key, unit_id in created.items()}
                )
                # As Fractal does: a unit is its images' latest as soon as it exists, so a
                # running or failed unit is what their status and image log show.
                await history.remember_latest_units(
                    connection,
                    ctx.dataset_id,
                    wftask.id,
                    {
                        url: created[(spec.kind, spec.index)]
                        for spec in missing
                        for url in spec.zarr_urls
                    },
                )
        by_id: dict[int, UnitSpec] = {}
        calls: list[UnitCall] = []
        codes: dict[int, int | None] = {}
        reasons: dict[int, str | None] = {}
        new = {(spec.kind, spec.index) for spec in missing}
        for spec in specs:
            unit_id, _status = known[(spec.kind, spec.index)]
            by_id[unit_id] = spec
            call = UnitCall(unit_id, spec.command, spec.args, UnitFiles(folder, spec.prefix))
            if (spec.kind, spec.index) in new:
                calls.append(call)  # its row was just made, so it never ran: nothing to adopt
                continue
            code = read_exit_code(call.files)
            if code is not None:
                codes[unit_id] = code  # it ended before a restart: never run it twice
                continue
            adopted = await ctx.executor.adopt(call)
            if adopted is not None:
                codes[unit_id], reasons[unit_id] = adopted.exit_code, adopted.reason
                continue
            calls.append(call)
        already: list[tuple[int, str, str | None]] = [
            (unit_id, UnitStatus.DONE if code == 0 else UnitStatus.FAILED, None)
            for unit_id, code in codes.items()
        ]
        if calls:
            parallel = specs[0].kind == "parallel"
            task = TaskInfo(run_id, wftask.order, wftask.task.name, wftask.meta_for(parallel))
            task.warm_start = warm_wanted(wftask.task.meta_for(parallel), task.meta)
            await self._run_calls(ctx, task, calls, codes, reasons)
        if already:
            async with self.engine.begin() as connection:
                await history.record_results(connection, run_id, already)
        if ctx.stop.is_set():
            async with self.engine.begin() as connection:
                await history.finish_run(connection, run_id, UnitStatus.FAILED)
            raise JobStoppedError
        failed = [unit_id for unit_id, code in codes.items() if code != 0]
        if failed:
            async with self.engine.begin() as connection:
                await history.finish_run(connection, run_id, UnitStatus.FAILED)
            raise JobFailedError(
                self._failure_message(wftask, by_id, failed, codes, reasons, folder)
            )
        results = []
        for unit_id, spec in by_id.items():
            try:
                results.append((unit_id, spec, reader(UnitFiles(folder, spec.prefix))))
            except TaskOutputError as error:
                async with self.engine.begin() as connection:
                    await history.finish_run(connection, run_id, UnitStatus.FAILED)
                where = f"task {wftask.order} '{wftask.task.name}', {self._unit_name(spec)}"
                raise JobFailedError(f"{where}: {error}") from None
        return results

    async def _run_calls(
        self,
        ctx: JobContext,
        task: TaskInfo,
        calls: list[UnitCall],
        codes: dict[int, int | None],
        reasons: dict[int, str | None],
    ) -> None:
        pending: list[tuple[int, str, str | None]] = []
        warm_ids: list[int] = []  # units that ran from a warm parent (history's `warm`)
        wake = asyncio.Event()
        ended = asyncio.Event()  # the executor is done: the last flush waits for nothing
        finished = False

        def on_result(result: UnitResult) -> None:
            codes[result.unit_id] = result.exit_code
            reasons[result.unit_id] = result.reason
            status = UnitStatus.DONE if result.exit_code == 0 else UnitStatus.FAILED
            pending.append((result.unit_id, status, result.reason))
            if result.warm:
                warm_ids.append(result.unit_id)
            wake.set()

        async def flush() -> None:
            batch, warm_batch = pending[:], warm_ids[:]
            del pending[: len(batch)], warm_ids[: len(warm_batch)]
            if batch:
                async with self.engine.begin() as connection:
                    await history.record_results(connection, task.run_id, batch, warm_batch)

        async def flush_until_finished() -> None:
            # Never cancelled mid-write: it ends by itself once the executor is done,
            # so no batch of results is ever taken off the list and then lost.
            while not finished:
                await wake.wait()
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), FLUSH_SECONDS)
                await flush()
            await flush()

        flusher = asyncio.create_task(flush_until_finished())
        try:
            await ctx.executor.run(task, calls, on_result, ctx.stop)
        finally:
            finished = True
            ended.set()
            wake.set()
            await flusher

    @staticmethod
    def _unit_name(spec: UnitSpec) -> str:
        if spec.kind == "parallel":
            return f"unit {spec.index} ({spec.zarr_urls[0] if spec.zarr_urls else ''})"
        return "the init step" if spec.kind == "init" else "its single unit"

    def _failure_message(
        self,
        wftask: SnapshotWorkflowTask,
        by_id: dict[int, UnitSpec],
        failed: list[int],
        codes: dict[int, int | None],
        reasons: dict[int, str | None],
        folder: Path,
    ) -> str:
        # The unit that failed by itself, not one that fail-fast stopped because of it.
        ended = [unit_id for unit_id in failed if codes[unit_id] is not None] or failed
        first = min(ended, key=lambda unit_id: by_id[unit_id].index)
        spec = by_id[first]
        code = codes[first]
        reason = reasons.get(first)
        if code is None:
            how = reason or "did not finish"
        else:
            how = f"exited with code {code}" + (f" ({reason})" if reason else "")
        skipped = sum(1 for unit_id in failed if codes[unit_id] is None and unit_id != first)
        tail = log_tail(UnitFiles(folder, spec.prefix)).strip()
        message = f"task {wftask.order} '{wftask.task.name}': {self._unit_name(spec)} {how}" + (
            f"; {skipped} other unit(s) were not run or were stopped" if skipped else ""
        )
        if tail:
            message += f"\nlast lines of its log ({spec.prefix}-log.txt):\n{tail}"
        return message
