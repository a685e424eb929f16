"""A slurm_ssh login node as the place of task environments (see place.py).

Commands run as the profile's user over the SSH connection the runner keeps to that login
(`SshClusterHost`): every argv is joined with shlex on the way (nothing from a request
reaches the remote shell unquoted), files move with SFTP. The user's own account confines
what pip and build scripts can reach there, as it confines that user's jobs.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from pydantic import ValidationError

from ...models import Profile, Resource
from ...runner.slurm.cluster_host import ClusterHostError, SshClusterHost
from ...runner.slurm.facilities import ssh_login
from ...runner.slurm.ssh_host import SshHostRegistry
from ...slurm_config import SlurmConfig
from .files import checked_target
from .place import StepFailedError, tasks_root

# `cd` into the folder, then the command with its error stream merged into its output (as
# pip's output is read here): cwd and argv are positional parameters, never shell text.
_IN_FOLDER = 'cd -- "$1" || exit 1; shift; exec "$@" 2>&1'
# Remove a folder (or a link, not followed) and say whether there was one.
_REMOVE = 'if [ -e "$1" ] || [ -L "$1" ]; then rm -rf -- "$1" && echo removed; fi'


def login_host(resource: Resource, profile: Profile, registry: SshHostRegistry) -> SshClusterHost:
    """The profile's login node, over `registry`'s connections; ValueError says what is
    missing in the resource or profile."""
    try:
        config = SlurmConfig.model_validate(resource.jobs_runner_config)
    except ValidationError:
        raise ValueError(
            f"the SLURM configuration of resource {resource.name!r} is invalid: tell an admin"
        ) from None
    return ssh_login(resource, profile, config).host(registry)


class SshPlace:
    remote = True

    def __init__(self, host: SshClusterHost, root: str) -> None:
        self.host = host
        self.root = root

    @classmethod
    def of(cls, resource: Resource, profile: Profile, registry: SshHostRegistry) -> SshPlace:
        return cls(login_host(resource, profile, registry), tasks_root(resource, profile))

    @property
    def where(self) -> str:
        return f"{self.host.user}@{self.host.ssh.target.host}"

    async def _command(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        try:
            result = await self.host.run(argv, timeout)
        except ClusterHostError as error:
            raise StepFailedError(f"on {self.where}: {error}") from None
        return result.returncode, result.stdout, result.stderr

    async def run(self, argv: list[str], *, cwd: str, timeout: float) -> tuple[int, str]:
        code, output, errors = await self._command(
            ["sh", "-c", _IN_FOLDER, "sh", cwd, *argv], timeout
        )
        return code, output + errors  # errors: only the shell's own (e.g. cd failed)

    async def _checked(self, what: str, argv: list[str]) -> str:
        code, output, errors = await self._command(argv, 120.0)
        if code != 0:
            lines = (errors or output).strip().splitlines()
            raise StepFailedError(
                f"{what} on {self.where} failed: {lines[-1] if lines else f'exit code {code}'}"
            )
        return output

    async def exists(self, path: str) -> bool:
        try:
            return await self.host.exists(path)
        except ClusterHostError as error:
            raise StepFailedError(str(error)) from None

    async def make_folder(self, path: str, *, exclusive: bool) -> None:
        parent = posixpath.dirname(posixpath.normpath(path))
        await self._checked(f"creating {parent}", ["mkdir", "-p", "--", parent])
        if not exclusive:
            await self._checked(f"creating {path}", ["mkdir", "-p", "--", path])
            return
        code, output, errors = await self._command(["mkdir", "--", path], 120.0)
        if code != 0:
            if await self.exists(path):
                raise FileExistsError(path)
            raise StepFailedError(f"cannot create {path} on {self.where}: {errors or output}")

    async def remove_folder(self, path: str, *, tidy_parents: bool) -> bool:
        path = posixpath.normpath(path)
        parent = posixpath.dirname(path)
        # Resolved on the login node, whose links they are; checked here by files.py's rule.
        resolved = await self._checked(
            f"resolving {path}", ["realpath", "-m", "--", self.root, parent]
        )
        lines = resolved.splitlines()
        if len(lines) != 2 or not all(line.startswith("/") for line in lines):
            raise StepFailedError(f"cannot resolve {path} on {self.where}: {resolved[:200]!r}")
        real_root, real_parent = lines
        target = checked_target(path, self.root, real_root, real_parent)
        output = await self._checked(f"removing {path}", ["sh", "-c", _REMOVE, "sh", str(target)])
        if tidy_parents:
            # Deepest first, each removed only if empty by then (rmdir goes on after a
            # refusal): the same as stopping at the first folder still in use.
            parents = [str(p) for p in target.parents if str(p).startswith(real_root + "/")]
            if parents:
                await self._command(["rmdir", "--", *parents], 120.0)
        return output.strip() == "removed"

    async def read_bytes(self, path: str, max_bytes: int) -> bytes:
        try:
            data = await self.host.read_bytes(path, max_bytes + 1)
        except ClusterHostError as error:
            raise StepFailedError(f"cannot read {path}: {error}") from None
        if len(data) > max_bytes:
            raise StepFailedError(f"{path} is larger than {max_bytes} bytes")
        return data

    async def put(self, local: Path, path: str) -> None:
        try:
            await self.host.put(local, path)
        except ClusterHostError as error:
            raise StepFailedError(f"cannot copy {local.name} to {self.where}: {error}") from None
