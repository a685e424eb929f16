"""Run a task's units on SLURM: batches through sbatch as the user, one poller, reattach.

Per task: the units are split into batches by the resource's batching rules; each batch
is one SLURM job running the node worker (`runner/node/`, copied beside the job) on a JSON
batch file. Before each `sbatch`, a
`slurmjob` row (unique name carrying job, run and batch) is committed; after it, the
SLURM job id. A runner that restarts reads the rows of the run: a job with an id is
watched again, a job without one is looked up by name in squeue, and only units in no
live job are submitted again. A unit's result is its exit-code file (written last by the
worker); a job that ends leaving units without one is explained from SLURM's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ...slurm_config import SlurmConfig
from ..executors.base import Executor, ResultCallback, TaskInfo, UnitResult
from ..node_batch import WorkerOptions, build_batch
from ..taskcall import UnitCall, read_exit_code
from .batching import (
    BatchingError,
    BatchPlan,
    EffectiveSection,
    effective_section,
    plan_batches,
    split_into_batches,
)
from .cluster_host import ClusterHostError
from .commands import FINAL_STATES, SlurmCommandError, SlurmCommands, SlurmReader
from .diagnose import JobLimits, explain, read_tail
from .job_files import ClusterFiles
from .poller import SlurmPoller
from .script import SbatchSpec, build_sbatch_script, sbatch_argv
from .store import SlurmJobStore

logger = logging.getLogger("fractal_like.runner.slurm")

# A failed transport (a dropped SSH connection) is tried again this many times in all.
TRANSPORT_ATTEMPTS = 3
LOST_SBATCH_SETTLE_SECONDS = 2.0
T = TypeVar("T")
SKIPPED = "not started: an earlier unit of the task failed, or the job was stopped"


@dataclass
class SlurmJobWatch:
    row_id: int
    name: str
    slurm_job_id: str
    unit_ids: list[int]
    stderr: Path
    limits: JobLimits
    cancelled_by_us: bool = False


@dataclass
class SlurmSettings:
    """Everything about the resource and the job that does not change between tasks."""

    config: SlurmConfig
    python_worker: str
    job_id: int
    account: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    worker_init: str | None = None  # the job's lines, run before the worker (worker_init.py)


class SlurmExecutor(Executor):
    def __init__(
        self,
        settings: SlurmSettings,
        commands: SlurmCommands,
        poller: SlurmPoller,
        store: SlurmJobStore,
        files: ClusterFiles,
    ) -> None:
        self.settings = settings
        self.commands = commands
        self.files = files
        self.poller = poller
        self.reader: SlurmReader = poller.reader
        self.store = store
        self.sbatch_calls = 0
        # In every SLURM job name: job and run ids repeat across servers (and databases)
        # sharing a cluster, and squeue lists ended jobs for a while, so a name alone
        # could find another server's job.
        self.token = secrets.token_hex(4)

    @property
    def runs_as_account(self) -> bool:
        return True  # the cluster user of the profile, always

    async def prepare_folder(self, folder: Path) -> Path:
        """The task's folder, created by (and owned by) the cluster user; the runner reads
        the units' files from the folder returned (the same one on a shared file system)."""
        return await self.files.prepare_folder(folder)

    async def adopt(self, call: UnitCall) -> UnitResult | None:
        return None  # reattaching happens per SLURM job in `run`, from the database

    async def run(
        self,
        task: TaskInfo,
        calls: list[UnitCall],
        on_result: ResultCallback,
        stop: asyncio.Event,
        fail_fast: bool = True,
    ) -> None:
        if not calls:
            return
        pending = {call.unit_id: call for call in calls}
        watches = await self._reattach(task, pending)
        covered = {unit_id for watch in watches for unit_id in watch.unit_ids}
        fresh = [call for call in calls if call.unit_id not in covered]
        failed = False
        if fresh and not stop.is_set():
            try:
                new, failed = await self._submit(task, fresh, on_result, pending, fail_fast)
            except (BatchingError, ValueError) as error:
                for call in fresh:
                    pending.pop(call.unit_id, None)
                    on_result(UnitResult(call.unit_id, None, f"was not submitted: {error}"))
                new, failed = [], True
            watches.extend(new)
        await self._watch(watches, pending, on_result, stop, fail_fast, failed)
        for unit_id in list(pending):  # never submitted: the job stopped or a unit failed
            on_result(UnitResult(unit_id, None, SKIPPED))

    async def _reattach(self, task: TaskInfo, pending: dict[int, UnitCall]) -> list[SlurmJobWatch]:
        watches: list[SlurmJobWatch] = []
        section = effective_section(self.settings.config, task.meta)
        for row in await self.store.open_rows(task.run_id):
            unit_ids = [unit_id for unit_id in row.unit_ids if unit_id in pending]
            slurm_job_id = row.slurm_job_id or await self._look_up(row.name)
            if not unit_ids or slurm_job_id is None:
                # Either nothing of it is left to wait for, or sbatch never ran for it
                # (SLURM lists no job of that name): its units are submitted afresh.
                await self.store.ended(row.id)
                continue
            if row.slurm_job_id is None:
                await self.store.submitted(row.id, slurm_job_id, unit_ids)
            folder = Path(row.folder)
            plan = plan_batches(len(row.unit_ids), section, self.settings.config.batching_config)
            watches.append(
                SlurmJobWatch(
                    row.id,
                    row.name,
                    slurm_job_id,
                    unit_ids,
                    folder / f"{row.name}.err",
                    JobLimits(plan.mem_per_job_mb, plan.time_per_job_minutes),
                )
            )
        if watches:
            self.poller.watch([watch.slurm_job_id for watch in watches])
        return watches

    async def _submit(
        self,
        task: TaskInfo,
        calls: list[UnitCall],
        on_result: ResultCallback,
        pending: dict[int, UnitCall],
        fail_fast: bool,
    ) -> tuple[list[SlurmJobWatch], bool]:
        section = effective_section(self.settings.config, task.meta)
        plan = plan_batches(len(calls), section, self.settings.config.batching_config)
        first = await self.store.count(task.run_id)
        watches: list[SlurmJobWatch] = []
        for number, batch in enumerate(split_into_batches(calls, plan.units_per_job)):
            name = f"fl-j{self.settings.job_id}-r{task.run_id}-b{first + number}-{self.token}"
            try:
                watch = await self._submit_batch(task, name, batch, section, plan)
            except SlurmCommandError as error:
                for call in batch:
                    pending.pop(call.unit_id, None)
                    on_result(UnitResult(call.unit_id, None, f"was not submitted: {error}"))
                if fail_fast:
                    return watches, True
                continue
            watches.append(watch)
            self.poller.watch([watch.slurm_job_id])
        return watches, False

    async def _submit_batch(
        self,
        task: TaskInfo,
        name: str,
        batch: list[UnitCall],
        section: EffectiveSection,
        plan: BatchPlan,
    ) -> SlurmJobWatch:
        """Write the batch's files where the cluster reads them, record the SLURM job,
        sbatch it; SlurmCommandError (saying why) when it could not be submitted."""
        folder = batch[0].files.folder  # the runner's view
        cluster_folder = self.files.cluster_folder(folder)
        document = self._batch_document(
            [self.files.cluster_call(call) for call in batch],
            plan.parallel_per_job,
            task.warm_start,
        )
        worker = await _again_if_lost(self.files.worker)
        text = json.dumps(document)
        batch_file = await _again_if_lost(
            lambda: self.files.write_job_file(folder, f"{name}.json", text)
        )
        script = build_sbatch_script(
            SbatchSpec(
                job_name=name,
                partition=section.partition,
                cpus_per_task=plan.cpus_per_job,
                mem_mb=plan.mem_per_job_mb,
                time_minutes=plan.time_per_job_minutes,
                account=self.settings.account or section.account,
                constraint=section.constraint,
                gres=section.gres,
                gpus=section.gpus,
                exclude=section.exclude,
                nodelist=section.nodelist,
                extra_lines=list(section.extra_lines),
                exports=self.settings.extra_env,
                shebang_line=section.shebang_line,
                worker_init=self.settings.worker_init,
                worker_python=self.settings.python_worker,
                worker_script=worker,
                batch_file=batch_file,
            )
        )
        script_file = await _again_if_lost(
            lambda: self.files.write_job_file(folder, f"{name}.sh", script)
        )
        unit_ids = [call.unit_id for call in batch]
        parallel_units = min(len(batch), plan.parallel_per_job)
        row_id = await self.store.add(task.run_id, name, unit_ids, str(folder), parallel_units)
        argv = sbatch_argv(
            script_file, str(cluster_folder / f"{name}.out"), str(cluster_folder / f"{name}.err")
        )
        self.sbatch_calls += 1
        try:
            slurm_job_id = await self._sbatch(name, argv)
        except ClusterHostError as error:
            await self.store.ended(row_id)
            raise SlurmCommandError(f"the cluster did not take it ({error})") from None
        except SlurmCommandError as error:
            await self.store.ended(row_id)
            raise SlurmCommandError(f"SLURM refused it ({error})") from None
        await self.store.submitted(row_id, slurm_job_id, unit_ids)
        return SlurmJobWatch(
            row_id,
            name,
            slurm_job_id,
            unit_ids,
            folder / f"{name}.err",
            JobLimits(plan.mem_per_job_mb, plan.time_per_job_minutes),
        )

    async def _sbatch(self, name: str, argv: list[str]) -> str:
        """sbatch; when the transport fails (a dropped SSH connection), SLURM may have taken
        the job anyway: its unique name tells, and only a job SLURM does not have is
        submitted again. ClusterHostError once TRANSPORT_ATTEMPTS failed."""
        for attempt in range(1, TRANSPORT_ATTEMPTS + 1):
            try:
                return await self.commands.sbatch(argv)
            except ClusterHostError as error:
                logger.warning("sbatch of %s: %s; looking it up by name", name, error)
                # An sbatch still in flight reaches the controller first.
                await asyncio.sleep(LOST_SBATCH_SETTLE_SECONDS)
                found = await self._look_up(name)
                if found is not None:
                    return found
                if attempt == TRANSPORT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _look_up(self, name: str) -> str | None:
        """The SLURM job of this name, or None when squeue surely lists none; a lookup that
        failed is asked again (never read as "none": that would submit its units twice)."""
        return await _retried(
            lambda: self.reader.find_by_name(name),
            SlurmCommandError,
            f"looking up SLURM job {name}",
            pause=0.5,
        )

    @staticmethod
    def _batch_document(
        batch: list[UnitCall], parallelism: int, warm_start: bool = True
    ) -> dict[str, Any]:
        # Nobody reads a SLURM worker's stdout live: each unit's result goes to a file.
        options = WorkerOptions(parallelism=parallelism, fail_fast=False, result_files=True)
        return build_batch(batch, warm_start, options)

    async def _watch(
        self,
        watches: list[SlurmJobWatch],
        pending: dict[int, UnitCall],
        on_result: ResultCallback,
        stop: asyncio.Event,
        fail_fast: bool,
        failed: bool,
    ) -> None:
        live = list(watches)
        stopping = False
        while live:
            if (stop.is_set() or (fail_fast and failed)) and not stopping:
                stopping = True
                await self._cancel(live)
            # States first, then files: a job seen ended has all its files in this round.
            states = dict(self.poller.states)
            fetched = await self._fetch(live, pending)
            for watch in list(live):
                failed |= self._collect(watch, pending, on_result)
                if not any(unit_id in pending for unit_id in watch.unit_ids):
                    await self._end(watch, live)
                    continue
                state = states.get(watch.slurm_job_id)
                if fetched and state is not None and (state == "" or state in FINAL_STATES):
                    await self._explain_missing(watch, pending, on_result)
                    failed = True
                    await self._end(watch, live)
            if live:
                await self._next_round(stop)

    async def _fetch(self, live: list[SlurmJobWatch], pending: dict[int, UnitCall]) -> bool:
        """Bring ended units' files to the runner; False when the cluster could not be
        read this round (no job is then judged by missing files)."""
        calls = [pending[i] for watch in live for i in watch.unit_ids if i in pending]
        try:
            await self.files.fetch_ended(calls)
        except SlurmCommandError as error:
            logger.warning("results not fetched from the cluster (%s); trying again", error)
            return False
        return True

    def _collect(
        self, watch: SlurmJobWatch, pending: dict[int, UnitCall], on_result: ResultCallback
    ) -> bool:
        """Report every unit of the job whose exit-code file appeared; True if one failed."""
        failed = False
        for unit_id in watch.unit_ids:
            call = pending.get(unit_id)
            if call is None:
                continue
            code = read_exit_code(call.files)
            if code is not None:
                del pending[unit_id]
                on_result(UnitResult(unit_id, code, warm=_ran_warm(call)))
                failed |= code != 0
        return failed

    async def _explain_missing(
        self, watch: SlurmJobWatch, pending: dict[int, UnitCall], on_result: ResultCallback
    ) -> None:
        missing = [unit_id for unit_id in watch.unit_ids if unit_id in pending]
        if not missing:
            return
        info = await self.reader.job_info(watch.slurm_job_id)
        with contextlib.suppress(SlurmCommandError):
            await self.files.fetch_file(watch.stderr)
        logger.info(
            "SLURM job %s left the queue with %d unit(s) unreported: %s",
            watch.slurm_job_id,
            len(missing),
            f"state {info.state} from {info.source}" if info else "SLURM no longer knows it",
        )
        reason = explain(
            watch.slurm_job_id, info, read_tail(watch.stderr), watch.limits, watch.cancelled_by_us
        )
        for unit_id in missing:
            del pending[unit_id]
            on_result(UnitResult(unit_id, None, reason))

    async def _cancel(self, live: list[SlurmJobWatch]) -> None:
        for watch in live:
            watch.cancelled_by_us = True
        with contextlib.suppress(SlurmCommandError):
            await self.commands.scancel([watch.slurm_job_id for watch in live])

    async def _end(self, watch: SlurmJobWatch, live: list[SlurmJobWatch]) -> None:
        live.remove(watch)
        self.poller.forget([watch.slurm_job_id])
        await self.store.ended(watch.row_id)

    async def _next_round(self, stop: asyncio.Event) -> None:
        round_done = asyncio.ensure_future(self.poller.next_round())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({round_done, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (round_done, stopped):
                future.cancel()


async def _again_if_lost(operation: Callable[[], Awaitable[T]]) -> T:
    """Run a write whose repeat is harmless (a whole file, renamed into place), again on a
    new connection when the transport failed."""
    return await _retried(operation, ClusterHostError, "writing a job file")


async def _retried(
    operation: Callable[[], Awaitable[T]],
    retry_on: type[Exception],
    what: str,
    pause: float = 0.0,
) -> T:
    """Run `operation` up to TRANSPORT_ATTEMPTS times while it raises `retry_on`, waiting
    `pause` x the attempt number between tries; the last failure is raised."""
    for attempt in range(1, TRANSPORT_ATTEMPTS + 1):
        try:
            return await operation()
        except retry_on as error:
            if attempt == TRANSPORT_ATTEMPTS:
                raise
            logger.warning("%s failed (%s); trying again", what, error)
            await asyncio.sleep(pause * attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


def _ran_warm(call: UnitCall) -> bool | None:
    """What the worker's result file says: did the unit run from a warm parent?"""
    try:
        result = json.loads(call.files.result.read_text())
    except (OSError, ValueError):
        return None
    return result.get("warm") if isinstance(result, dict) else None
