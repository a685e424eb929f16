"""Where the SLURM commands of a profile run: on this machine through sudo, or over SSH.

`SlurmCommands` and `SlurmReader` (commands.py) only need to run an argv as the profile's
user and to touch that user's files; a `ClusterHost` does that, whatever the transport:

- `LocalSudoHost`: slurm_sudo, this machine, `sudo -n -u <user> env -i …` (accounts.py);
- `SshClusterHost`: slurm_ssh, the login node, as the SSH user (ssh_host.py);
- `ServerAccount`: read-only queries run as the server's own account, here (the default of
  `SlurmReader`, as before there were transports).

Failures of the transport become `ClusterHostError`, a `SlurmCommandError`: callers handle
"the cluster did not answer" where they already handle "SLURM refused".
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from ..accounts import as_account, check_account, make_folder
from .process import COMMAND_TIMEOUT_SECONDS, CommandResult, SlurmCommandError, run_command
from .ssh_host import SshError, SshHost


class ClusterHostError(SlurmCommandError):
    """The cluster side could not be reached or could not do it; the message says which."""


class CommandRunner(Protocol):
    async def run(
        self, argv: list[str], timeout: float = COMMAND_TIMEOUT_SECONDS, *, idempotent: bool = False
    ) -> CommandResult:
        """Run argv; `idempotent` says a repeat is harmless (a query), so a transport may
        retry it once after a dropped connection."""
        ...


class ClusterHost(CommandRunner, Protocol):
    """Commands and files as the profile's cluster user."""

    user: str

    async def mkdir(self, path: str) -> None:
        """Create the folder and its parents, 0755, owned by the user."""
        ...

    async def write_text(self, path: str, text: str) -> None: ...

    async def read_text(self, path: str) -> str: ...

    async def exists(self, path: str) -> bool: ...


class ServerAccount:
    """This machine, the server's own account and environment (SLURM_CONF included)."""

    async def run(
        self, argv: list[str], timeout: float = COMMAND_TIMEOUT_SECONDS, *, idempotent: bool = False
    ) -> CommandResult:
        return await run_command(argv, timeout)


class LocalSudoHost:
    """This machine, as `user` through `sudo -n -u` with exactly `environment` (slurm_sudo).

    The slurm_sudo executor only runs commands and mkdir through it (the sudo rules of
    docs/slurm.md); write_text needs `tee` in those rules, read_text `cat`.
    """

    def __init__(self, user: str, environment: Mapping[str, str]) -> None:
        self.user = check_account(user)
        self.environment = dict(environment)

    async def run(
        self, argv: list[str], timeout: float = COMMAND_TIMEOUT_SECONDS, *, idempotent: bool = False
    ) -> CommandResult:
        return await run_command(as_account(self.user, argv, self.environment), timeout)

    async def mkdir(self, path: str) -> None:
        await make_folder(self.user, path, self.environment)

    async def write_text(self, path: str, text: str) -> None:
        argv = as_account(self.user, ["tee", "--", path], self.environment)
        result = await run_command(argv, stdin=text.encode())
        if result.returncode != 0:
            raise ClusterHostError(f"user {self.user!r} cannot write {path!r}: {_why(result)}")

    async def read_text(self, path: str) -> str:
        result = await self.run(["cat", "--", path])
        if result.returncode != 0:
            raise ClusterHostError(f"user {self.user!r} cannot read {path!r}: {_why(result)}")
        return result.stdout

    async def exists(self, path: str) -> bool:
        # Same file system as the server, which reads the jobs' files itself.
        return await asyncio.to_thread(os.path.exists, path)


class SshClusterHost:
    """The login node over SSH, as the SSH target's user (slurm_ssh).

    `environment` is set for each command with `env NAME=value` on top of the user's own
    login environment (SLURM_CONF when the cluster's configuration is not at its default).
    """

    def __init__(self, ssh: SshHost, environment: Mapping[str, str] | None = None) -> None:
        self.ssh = ssh
        self.user = ssh.target.user
        self.environment = dict(environment or {})

    async def run(
        self, argv: list[str], timeout: float = COMMAND_TIMEOUT_SECONDS, *, idempotent: bool = False
    ) -> CommandResult:
        assignments = [f"{name}={value}" for name, value in self.environment.items()]
        command = ["env", *assignments, *argv] if assignments else argv
        try:
            return await self.ssh.run(command, timeout, idempotent=idempotent)
        except SshError as error:
            raise ClusterHostError(str(error)) from error

    async def mkdir(self, path: str) -> None:
        try:
            await self.ssh.mkdir(path, parents=True, mode=0o755)
        except SshError as error:
            raise ClusterHostError(f"user {self.user!r} cannot create {path!r}: {error}") from error

    async def write_text(self, path: str, text: str) -> None:
        try:
            await self.ssh.write_text(path, text)
        except SshError as error:
            raise ClusterHostError(str(error)) from error

    async def read_text(self, path: str) -> str:
        try:
            return await self.ssh.read_text(path)
        except SshError as error:
            raise ClusterHostError(str(error)) from error

    async def exists(self, path: str) -> bool:
        try:
            return await self.ssh.exists(path)
        except SshError as error:
            raise ClusterHostError(str(error)) from error

    async def read_bytes(self, path: str, limit: int = -1) -> bytes:
        try:
            return await self.ssh.read_bytes(path, limit)
        except SshError as error:
            raise ClusterHostError(str(error)) from error

    async def listdir(self, path: str) -> list[str]:
        try:
            return await self.ssh.listdir(path)
        except SshError as error:
            raise ClusterHostError(str(error)) from error

    async def put(self, local: str | Path, remote: str) -> None:
        """Copy a server file to the host (the batch worker, batch files)."""
        try:
            await self.ssh.put(local, remote)
        except SshError as error:
            raise ClusterHostError(str(error)) from error


def _why(result: CommandResult) -> str:
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit code {result.returncode}"
