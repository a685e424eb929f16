"""One `squeue` call per interval for every SLURM job of a runner, with back-off.

Executors register their SLURM job ids and wait for rounds; each round asks SLURM once
for all of them. When nothing changed, the interval grows (x1.5, up to `max_interval`);
a change or a new job brings it back to `min_interval`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .commands import SlurmCommandError, SlurmReader

logger = logging.getLogger("fractal_like.runner.slurm")


class SlurmPoller:
    def __init__(
        self,
        min_interval: float = 0.5,
        max_interval: float = 5.0,
        reader: SlurmReader | None = None,  # where squeue runs; default: this machine
    ) -> None:
        self.min_interval = min_interval
        self.max_interval = max(min_interval, max_interval)
        self.interval = min_interval
        self.states: dict[str, str] = {}  # job id -> state; "" once squeue no longer lists it
        self._watched: set[str] = set()
        self._round = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self.squeue_calls = 0
        self.reader = reader or SlurmReader()

    def watch(self, job_ids: list[str]) -> None:
        new = set(job_ids) - self._watched
        if new:
            self._watched |= new
            self.interval = self.min_interval
            self._poke.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())

    def forget(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self._watched.discard(job_id)
            self.states.pop(job_id, None)

    async def next_round(self) -> None:
        """Wait until the next squeue round has updated `states`."""
        async with self._round:
            await self._round.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while self._watched:
            ids = sorted(self._watched)
            try:
                listed = await self.reader.squeue(ids)
                self.squeue_calls += 1
            except SlurmCommandError as error:
                logger.warning("squeue failed (%s); trying again", error)
                listed = None
            if listed is not None:
                current = {job_id: listed.get(job_id, "") for job_id in ids}
                changed = any(self.states.get(job_id) != state for job_id, state in current.items())
                self.states.update(current)
                self.interval = (
                    self.min_interval if changed else min(self.max_interval, self.interval * 1.5)
                )
            async with self._round:
                self._round.notify_all()
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.interval)
        async with self._round:
            self._round.notify_all()
