"""Run units as local processes, N at a time, each in its own process group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from ..taskcall import UnitCall, read_exit_code, read_pid
from .base import ResultCallback, UnitResult

KILL_GRACE_SECONDS = 2.0
ADOPT_POLL_SECONDS = 0.2
STOPPED = "stopped before it finished"
SKIPPED = "not started: an earlier unit of the task failed, or the job was stopped"


def _is_our_unit(pid: int) -> bool:
    """A pid from a unit's pid file still belongs to that unit's wrapper (not a reused pid)."""
    try:
        return b"fractal-like-unit" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class LocalExecutor:
    def __init__(self, parallelism: int | None = None) -> None:
        self.parallelism = max(1, parallelism or os.cpu_count() or 1)

    async def run(
        self,
        calls: list[UnitCall],
        on_result: ResultCallback,
        stop: asyncio.Event,
        fail_fast: bool = True,
    ) -> None:
        queue: asyncio.Queue[UnitCall] = asyncio.Queue()
        for call in calls:
            queue.put_nowait(call)
        cancel = asyncio.Event()
        running: dict[int, asyncio.subprocess.Process] = {}

        async def watch_stop() -> None:
            await stop.wait()
            cancel.set()

        async def worker() -> None:
            while not queue.empty():
                call = queue.get_nowait()
                if cancel.is_set():
                    on_result(UnitResult(call.unit_id, None, SKIPPED))
                    continue
                result = await self._run_one(call, running, cancel)
                on_result(result)
                if fail_fast and result.exit_code != 0:
                    cancel.set()

        async def killer() -> None:
            await cancel.wait()
            await _kill_all(running)

        watchers = [asyncio.create_task(watch_stop()), asyncio.create_task(killer())]
        try:
            workers = [worker() for _ in range(min(self.parallelism, len(calls)))]
            await asyncio.gather(*workers)
        finally:
            # Cancelled (the runner is shutting down): units keep running, each in its own
            # session, and the runner that takes the job over adopts them. Only a stop or
            # a failed unit kills them, through `killer`.
            for task in watchers:
                task.cancel()

    async def _run_one(
        self,
        call: UnitCall,
        running: dict[int, asyncio.subprocess.Process],
        cancel: asyncio.Event,
    ) -> UnitResult:
        call.prepare()
        env = {**os.environ, **call.env}
        with call.files.log.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *call.argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=call.files.folder,
                env=env,
                start_new_session=True,  # its own process group: a stop kills the whole tree
            )
        running[call.unit_id] = process
        try:
            returncode = await process.wait()
        finally:
            running.pop(call.unit_id, None)
        code = read_exit_code(call.files)
        if code is None:
            reason = STOPPED if cancel.is_set() else _signal_reason(returncode)
            return UnitResult(call.unit_id, None, reason)
        return UnitResult(call.unit_id, code)

    async def adopt(self, call: UnitCall) -> UnitResult | None:
        """Wait for a unit an earlier runner started; None if it is gone without a result."""
        code = read_exit_code(call.files)
        if code is not None:
            return UnitResult(call.unit_id, code)
        pid = read_pid(call.files)
        while pid is not None and _is_our_unit(pid):
            await asyncio.sleep(ADOPT_POLL_SECONDS)
            code = read_exit_code(call.files)
            if code is not None:
                return UnitResult(call.unit_id, code)
        code = read_exit_code(call.files)
        return UnitResult(call.unit_id, code) if code is not None else None


def _signal_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"ended with exit code {returncode} before recording a result"


async def _kill_all(running: dict[int, asyncio.subprocess.Process]) -> None:
    if not running:
        return
    processes = list(running.values())
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(process.wait() for process in processes)), KILL_GRACE_SECONDS
        )
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
