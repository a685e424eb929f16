"""Run units as local processes, N at a time, each in its own process group.

The units of one `run` go to one node worker process (the launcher: `runner/node/`, the
same worker a SLURM job runs): it starts them with `posix_spawn`, writes their args and
exit-code files and reports each end on a pipe. The runner's event loop does no per-unit
process or file work: it writes one batch file and reads one line per unit. The launcher
lives in its own session: when the runner dies or shuts down it starts no more units, lets
the running ones end and records them, and a runner that takes the job over waits for it
(`adopt`) before running the rest.

The launcher starts with the units' allow-listed environment (`unit_env`), never the
runner's. With `private_paths` it confines itself and so every unit (`node/sandbox.py`:
Landlock keeps them from the server's secret and database files). With `account` (a local profile's
`username`) it runs as that Unix account through `sudo -n -u`, as slurm_sudo's commands do:
the units' folders are created as that account, while the batch file and the launcher's log
stay in the runner's own folder of the job (`working_dir`), as a SLURM job's files do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from .. import node
from ..accounts import as_account, make_folder
from ..node import sandbox
from ..node.report import STOPPED as STOPPED  # what a stopped unit's reason says
from ..node.report import parse_report_line
from ..node.worker import EXIT_OK, EXIT_STOPPED
from ..node_batch import WorkerOptions, build_batch
from ..taskcall import UnitCall, UnitFiles, log_tail, read_exit_code, read_pid
from ..unit_env import unit_environment
from .base import Executor, ResultCallback, TaskInfo, UnitResult

ADOPT_POLL_SECONDS = 0.2
SKIPPED = "not started: an earlier unit of the task failed, or the job was stopped"
# The launcher's own files sit beside the units' and are named like a unit's:
# launcher-pid (its pid, for the runner that takes a job over) and launcher-log.txt.
LAUNCHER_PREFIX = "launcher"
# Run as a profile's account, the launcher and units write files the runner must read.
ACCOUNT_UMASK = 0o022


def _cmdline(pid: int) -> bytes:
    """A live process's command line; empty for a zombie or a process that is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _live_launcher(
    folder: Path, batch_folder: Path | None = None, package: str = node.PACKAGE_DIR
) -> int | None:
    """The pid of the launcher still running units in `folder`, if any.

    Its command line names `package` (the node package or its copy) and its batch file,
    which lives in `batch_folder` (default: `folder`); a launcher that has ended (even
    as a zombie) has recorded every unit it ran."""
    pid = read_pid(UnitFiles(folder, LAUNCHER_PREFIX))
    if pid is None:
        return None
    arguments = _cmdline(pid).split(b"\0")
    script, batch = os.fsencode(package), os.fsencode(batch_folder or folder)
    if script in arguments and any(arg.startswith(batch + b"/") for arg in arguments):
        return pid
    return None


class LocalExecutor(Executor):
    def __init__(
        self,
        parallelism: int | None = None,
        memory_limit_mb: int | None = None,
        *,
        private_paths: Sequence[str] | None = None,
        account: str | None = None,
        working_dir: Path | None = None,
        python: str | None = None,
        exports: Mapping[str, str] | None = None,
    ) -> None:
        self.parallelism = max(1, parallelism or os.cpu_count() or 1)
        self.memory_limit_mb = memory_limit_mb  # per unit (RLIMIT_DATA), None: no limit
        # The server's files no unit may reach; None: units are not confined at all.
        self.private_paths = list(private_paths) if private_paths is not None else None
        self.account = account  # the Unix account units run as; None: the runner's own
        self.working_dir = working_dir  # the runner's folder of the job (with `account`)
        # The launcher's interpreter: one `account` can run (ours may lie in a private home).
        self.python = python or sys.executable
        # `exports`: the job's worker_init variables (worker_init.py), over the allow-list.
        self.environment = unit_environment(account=account, extra=exports)
        self.confined_tmp = self._confined_tmp()
        if self.confined_tmp is not None:
            self.environment["TMPDIR"] = str(self.confined_tmp)

    @property
    def runs_as_account(self) -> bool:
        return self.account is not None

    @property
    def confined(self) -> bool:
        """Units run as the runner's account, kept from the server's files by Landlock."""
        return self.private_paths is not None and self.account is None

    def _confined_tmp(self) -> Path | None:
        """A temporary folder of the job's own when the usual one lies above the server's
        files: Landlock then keeps confined units from creating entries in it."""
        if not self.confined or self.working_dir is None:
            return None
        usual = self.environment.get("TMPDIR") or tempfile.gettempdir()
        if not sandbox.creation_blocked_in(usual, self.private_paths or []):
            return None
        return self.working_dir / "tmp"

    async def prepare_job(self, zarr_dir: str) -> None:
        """Folders confined units cannot create themselves, made before any of them starts:
        the dataset's folder and the job's temporary folder may lie beside the server's
        files, where Landlock lets units use what exists but create nothing new."""
        if not self.confined:
            return
        for folder in (zarr_dir, self.confined_tmp):
            if folder:
                with contextlib.suppress(OSError):  # the task says why if it needs the folder
                    Path(folder).mkdir(parents=True, exist_ok=True)

    async def prepare_folder(self, folder: Path) -> Path:
        """A task's folder for the units' files, owned by the account they run as."""
        if self.account is None:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            await make_folder(self.account, str(folder), self.environment)
        return folder

    def _runner_folder(self, folder: Path) -> Path:
        """Where the batch file and the launcher's log of the units in `folder` go: the
        runner's own folder of the task when units run as another account."""
        if self.account is None or self.working_dir is None:
            return folder
        return self.working_dir / folder.name

    def _node_package(self, install: bool = False) -> str:
        """Where the launcher runs the node package from: the package itself, or, for units
        run as another account (which may not read the server's install), a copy in the
        runner's folder of the job, as for a SLURM job. `install` makes the copy if missing."""
        if self.account is None or self.working_dir is None:
            return node.PACKAGE_DIR
        if install:
            return node.install(str(self.working_dir))
        return str(self.working_dir / node.COPY_NAME)

    async def run(
        self,
        task: TaskInfo,
        calls: list[UnitCall],
        on_result: ResultCallback,
        stop: asyncio.Event,
        fail_fast: bool = True,
    ) -> None:
        """Run the units; `<python> <script.py>` units from a warm parent unless the task's
        `warm_start` is false (its `warm_start` meta)."""
        if not calls:
            return
        folder = calls[0].files.folder
        runner_folder = self._runner_folder(folder)
        runner_folder.mkdir(parents=True, exist_ok=True)
        batch_file = self._write_batch(calls, fail_fast, task.warm_start, runner_folder)
        reported: set[int] = set()
        calls_by_id = {call.unit_id: call for call in calls}
        argv = node.worker_argv(self.python, self._node_package(install=True), str(batch_file))
        with UnitFiles(runner_folder, LAUNCHER_PREFIX).log.open("ab") as log:
            try:
                process = subprocess.Popen(
                    # Exactly the units' environment, as the account they run as.
                    as_account(self.account, argv, self.environment),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    cwd=folder,
                    start_new_session=True,  # outlives the runner; no terminal signal reaches it
                )
            except BaseException:
                batch_file.unlink(missing_ok=True)
                raise
        assert process.stdin is not None and process.stdout is not None
        stopper = asyncio.create_task(_stop_on(stop, process.stdin))
        try:
            async for line in _lines(process.stdout):
                result = parse_report_line(line)
                reported.add(result["id"])
                on_result(
                    UnitResult(
                        result["id"],
                        result["code"],
                        result["reason"] or self._memory_reason(result, calls_by_id),
                        warm=result.get("warm", False),
                    )
                )
            returncode = await _wait(process)
        except BaseException:
            # Cancelled (the runner is shutting down): end of file on its stdin tells the
            # launcher to start no more units; the running ones end and are recorded, and the
            # runner that takes the job over adopts them. Only a stop or a failure kills them.
            process.stdin.close()
            raise
        finally:
            stopper.cancel()
        process.stdin.close()
        batch_file.unlink(missing_ok=True)  # the launcher's own, unless it may not delete it
        missing = [call for call in calls if call.unit_id not in reported]
        if not missing:
            return
        # Units never started (a failed unit or a stop), or the launcher itself died: then
        # the units it had started may still be running, and are waited for like any other.
        # Stopped by a signal (an admin, a runner that took the job over) is a stop, not a death.
        died = returncode not in (EXIT_OK, EXIT_STOPPED)
        if died:
            tail = log_tail(UnitFiles(runner_folder, LAUNCHER_PREFIX)).strip()
            reason = f"the unit launcher ended with code {returncode}" + (
                f": {tail}" if tail else ""
            )
        else:
            reason = SKIPPED
        for call in missing:
            adopted = await self.adopt(call) if died else None
            on_result(adopted or UnitResult(call.unit_id, None, reason))

    def _memory_reason(self, result: dict[str, Any], calls: dict[int, UnitCall]) -> str | None:
        """Plain words for a unit that failed on the memory limit (Python's MemoryError)."""
        if self.memory_limit_mb is None or result["code"] in (0, None):
            return None
        if "MemoryError" not in log_tail(calls[result["id"]].files):
            return None
        return (
            f"it ran out of memory: the resource allows {self.memory_limit_mb} MB per unit "
            "(jobs_runner_config.memory_limit_per_unit_mb)"
        )

    def _write_batch(
        self, calls: list[UnitCall], fail_fast: bool, warm_start: bool, runner_folder: Path
    ) -> Path:
        options = WorkerOptions(
            parallelism=self.parallelism,
            fail_fast=fail_fast,
            pid_file=str(UnitFiles(calls[0].files.folder, LAUNCHER_PREFIX).pid),
            control_on_stdin=True,
            memory_limit_mb=self.memory_limit_mb,
            confine=self.private_paths,
            umask=ACCOUNT_UMASK if self.account is not None else None,
            remove_batch=True,
        )
        batch = build_batch(calls, warm_start, options)
        handle, name = tempfile.mkstemp(prefix="launcher-batch-", suffix=".json", dir=runner_folder)
        with os.fdopen(handle, "w") as out:
            if self.account is not None:
                os.fchmod(out.fileno(), 0o644)  # the account reads it, in the runner's folder
            out.write(json.dumps(batch))
        return Path(name)

    async def adopt(self, call: UnitCall) -> UnitResult | None:
        """Wait for a unit an earlier runner started; None if it is gone without a result.

        The launcher of a runner that died runs no new unit, and ends once the units it
        was running have ended and been recorded: wait for it, then read the file."""
        code = read_exit_code(call.files)
        if code is not None:
            return UnitResult(call.unit_id, code)
        runner_folder = self._runner_folder(call.files.folder)
        package = self._node_package()
        while _live_launcher(call.files.folder, runner_folder, package) is not None:
            await asyncio.sleep(ADOPT_POLL_SECONDS)
        code = read_exit_code(call.files)
        return UnitResult(call.unit_id, code) if code is not None else None


async def _lines(pipe: IO[bytes]) -> AsyncIterator[bytes]:
    """The launcher's output, line by line, without a thread."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        async for line in reader:
            yield line
    finally:
        transport.close()


async def _stop_on(stop: asyncio.Event, stdin: IO[bytes]) -> None:
    await stop.wait()
    with contextlib.suppress(OSError, ValueError):
        stdin.write(b"stop\n")
        stdin.flush()


async def _wait(process: subprocess.Popen[bytes]) -> int:
    """The launcher's exit status; it closed its stdout, so it is ending or has ended."""
    deadline = time.monotonic() + 60
    while (code := process.poll()) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return code if code is not None else await asyncio.to_thread(process.wait)
