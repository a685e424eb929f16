"""Where a SLURM job's files live for the cluster and for the runner, and how they meet.

The runner reads every unit's files (exit code, output, log, result) from a folder of its
own view; the batch worker on the cluster writes them into the units' folder of the
cluster's view. The SLURM executor asks a `ClusterFiles` to bridge the two:

- `SharedClusterFiles` (slurm_sudo): the cluster's file system is the runner's, so both
  views are one folder; batch files and scripts go into the server's job folder.
- `SshClusterFiles` (slurm_ssh): the cluster is another machine. The runner keeps a
  mirror of the job under its own job folder; batch files, scripts and the worker go up
  over SFTP, and each ended unit's files come back, its exit-code file last, so a unit's
  exit code is never seen before its output.
"""

from __future__ import annotations

import asyncio
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from .. import node
from ..node.batch import EXIT_CODE_SUFFIX, LOG_SUFFIX, OUTPUT_SUFFIX, RESULT_SUFFIX
from ..node.report import write_whole
from ..taskcall import UnitCall, UnitFiles
from .cluster_host import ClusterHost, SshClusterHost

# Copied back after the unit ended, in this order: the exit code last.
RESULT_FILES = (OUTPUT_SUFFIX, RESULT_SUFFIX, LOG_SUFFIX, EXIT_CODE_SUFFIX)
FETCH_CONCURRENCY = 16  # SFTP requests in flight at once (one connection carries them all)


class ClusterFiles(ABC):
    """The two views of one job's files (see the module's docstring)."""

    @abstractmethod
    async def prepare_folder(self, folder: Path) -> Path:
        """Create a task's folder (given in the cluster's view) for the cluster user;
        returns the runner's view of it, where the units' files will be read."""

    @abstractmethod
    def cluster_folder(self, folder: Path) -> Path:
        """The cluster's view of a folder of the runner's view."""

    @abstractmethod
    async def worker(self) -> str:
        """The batch worker's package, as the cluster sees it (copied once per job)."""

    @abstractmethod
    async def write_job_file(self, task_folder: Path, name: str, text: str) -> str:
        """Write a file the SLURM job reads (batch document, script) for the task whose
        folder is `task_folder` (runner's view); returns its path in the cluster's view."""

    async def fetch_ended(self, calls: Iterable[UnitCall]) -> None:  # noqa: B027 (shared FS)
        """Bring the files of every unit of `calls` that has ended into the runner's view.

        Raises ClusterHostError when the cluster cannot be read now; nothing is lost, the
        next call fetches what this one could not."""

    async def fetch_file(self, path: Path) -> None:  # noqa: B027 (shared FS: nothing to do)
        """Bring one job file (runner's view, e.g. SLURM's stderr file) up to date."""

    def cluster_call(self, call: UnitCall) -> UnitCall:
        """The unit as the worker on the cluster must see it."""
        folder = self.cluster_folder(call.files.folder)
        if folder == call.files.folder:
            return call
        return UnitCall(
            call.unit_id, call.command, call.args, UnitFiles(folder, call.files.prefix), call.env
        )


class SharedClusterFiles(ClusterFiles):
    """One file system: units write where the runner reads; job files go to the server's
    job folder (`working_dir`), which the cluster user can read."""

    def __init__(self, host: ClusterHost, working_dir: Path) -> None:
        self.host = host
        self.working_dir = working_dir

    async def prepare_folder(self, folder: Path) -> Path:
        await self.host.mkdir(str(folder))
        return folder

    def cluster_folder(self, folder: Path) -> Path:
        return folder

    async def worker(self) -> str:
        return await asyncio.to_thread(node.install, str(self.working_dir))

    async def write_job_file(self, task_folder: Path, name: str, text: str) -> str:
        folder = self.working_dir / task_folder.name
        path = folder / name
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(write_whole, str(path), text.encode())
        return str(path)


class SshClusterFiles(ClusterFiles):
    """The cluster's job folder `cluster_root` mirrored into the runner's `local_root`."""

    def __init__(self, host: SshClusterHost, cluster_root: str, local_root: Path) -> None:
        self.host = host
        self.cluster_root = PurePosixPath(cluster_root)
        self.local_root = local_root
        self._worker: str | None = None

    async def prepare_folder(self, folder: Path) -> Path:
        relative = PurePosixPath(folder).relative_to(self.cluster_root)
        await self.host.mkdir(str(folder))
        local = self.local_root / relative
        await asyncio.to_thread(local.mkdir, parents=True, exist_ok=True)
        return local

    def cluster_folder(self, folder: Path) -> Path:
        return Path(self.cluster_root / folder.relative_to(self.local_root))

    async def worker(self) -> str:
        if self._worker is None:
            target = posixpath.join(str(self.cluster_root), node.COPY_NAME)
            files = node.package_files()
            # __main__.py goes last: once it is there, so is the rest (a restarted runner
            # or another of the job's tasks finds a whole copy or none).
            files.sort(key=lambda name: name == "__main__.py")
            if not await self.host.exists(posixpath.join(target, files[-1])):
                await self.host.mkdir(target)
                for name in files:
                    text = Path(node.PACKAGE_DIR, name).read_text()
                    await self.host.write_text(posixpath.join(target, name), text)
            self._worker = target
        return self._worker

    async def write_job_file(self, task_folder: Path, name: str, text: str) -> str:
        path = posixpath.join(str(self.cluster_folder(task_folder)), name)
        await self.host.write_text(path, text)
        return path

    async def fetch_ended(self, calls: Iterable[UnitCall]) -> None:
        by_folder: dict[Path, list[UnitCall]] = {}
        for call in calls:
            if not call.files.exit_code.exists():  # not fetched yet
                by_folder.setdefault(call.files.folder, []).append(call)
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)
        for folder, waiting in by_folder.items():
            names = set(await self.host.listdir(str(self.cluster_folder(folder))))
            ended = [call for call in waiting if call.files.prefix + EXIT_CODE_SUFFIX in names]
            await asyncio.gather(*(self._fetch_unit(call, names, limit) for call in ended))

    async def _fetch_unit(self, call: UnitCall, names: set[str], limit: asyncio.Semaphore) -> None:
        for suffix in RESULT_FILES:
            name = call.files.prefix + suffix
            if name in names:
                async with limit:
                    await self._copy(call.files.folder / name)

    async def fetch_file(self, path: Path) -> None:
        remote = str(self.cluster_folder(path.parent) / path.name)
        if await self.host.exists(remote):
            await self._copy(path)

    async def _copy(self, local: Path) -> None:
        remote = str(self.cluster_folder(local.parent) / local.name)
        data = await self.host.read_bytes(remote)
        # Whole or not at all: the runner never sees half of an exit-code file.
        await asyncio.to_thread(write_whole, str(local), data)
