"""Where a task group's environment lives and its commands run.

One `Venv` (venv.py) and one rule for removing folders (files.py), two places:

- `LocalPlace`: this machine (local and slurm_sudo resources), each command an argv run
  without a shell, confined from the server's files (runner/node/sandbox.py);
- `SshPlace` (ssh_place.py): a slurm_ssh login node, as the profile's user, over the
  runner's SSH connection to it; the venvs live under the profile's tasks_remote_dir.

A place also knows its tasks root: nothing outside it is ever removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ...models import Profile, Resource
from ...runner.node import sandbox
from ...runner.unit_env import pip_environment
from .files import make_folder, remove_folder


class StepFailedError(Exception):
    """A step of the work failed; the message says what happened, in plain words."""


class Place(Protocol):
    root: str  # the tasks root of this place
    remote: bool  # on a login node: the server's own pip and files are not there

    @property
    def where(self) -> str:
        """The place, for messages: "the server", or user@login-node."""
        ...

    async def run(self, argv: list[str], *, cwd: str, timeout: float) -> tuple[int, str]:
        """Run argv in cwd; its exit code and its combined output. OSError if it cannot
        start; StepFailedError when it times out or the place cannot be reached."""
        ...

    async def exists(self, path: str) -> bool: ...

    async def make_folder(self, path: str, *, exclusive: bool) -> None:
        """Create the folder (and its parents); with `exclusive`, FileExistsError if it is
        there already."""
        ...

    async def remove_folder(self, path: str, *, tidy_parents: bool) -> bool:
        """Remove a folder inside the root (UnsafeRemovalError otherwise), and with
        `tidy_parents` its parents that became empty; whether something was removed."""
        ...

    async def read_bytes(self, path: str, max_bytes: int) -> bytes:
        """The file's bytes; StepFailedError if it cannot be read or is larger."""
        ...

    async def put(self, local: Path, path: str) -> None:
        """Copy a file of this machine to `path` of the place."""
        ...


def tasks_root(resource: Resource, profile: Profile | None) -> str:
    """Where the task groups of this resource and profile live; ValueError says what is
    missing. On slurm_ssh, as in Fractal, it is the profile's tasks_remote_dir."""
    if resource.type != "slurm_ssh":
        return resource.tasks_local_dir
    if profile is None or not profile.tasks_remote_dir:
        name = profile.name if profile is not None else "(none)"
        raise ValueError(
            f"resource {resource.name!r} is reached over SSH and profile {name!r} has no "
            "tasks_remote_dir, the folder on the cluster where task environments go: tell "
            "an admin"
        )
    if os.path.normpath(profile.tasks_remote_dir) == os.path.normpath(resource.tasks_local_dir):
        # The server keeps uploads for the login node there, in folders of the same names.
        raise ValueError(
            f"profile {profile.name!r} has the resource's tasks_local_dir as its "
            "tasks_remote_dir: they must be different folders; tell an admin"
        )
    return profile.tasks_remote_dir


# --- This machine -----------------------------------------------------------------------------


async def run(
    argv: list[str], *, cwd: Path, timeout: float, confine: Sequence[str] | None = None
) -> tuple[int, str]:
    """Run a command; its exit code and its combined output. Killed on timeout or cancel.

    `confine`: the server's files the command must not reach (see runner/node/sandbox.py): pip
    runs the build scripts of the packages it installs, which are the users' code."""
    # The server's own settings (database URL, JWT secret) are none of pip's business, nor of
    # the build scripts of the packages it installs: they get the units' allow-list, plus the
    # site's network settings and pip's own (PYTHONPATH, VIRTUAL_ENV... of the server stay out).
    env = pip_environment()
    shown_name = argv[0]
    with contextlib.ExitStack() as cleanup:
        if confine is not None:
            argv = [sys.executable, "-I", "-S", sandbox.__file__, *confine, "--", *argv]
            usual = env.get("TMPDIR") or tempfile.gettempdir()
            if sandbox.creation_blocked_in(usual, confine):
                # pip builds in temporary folders: one it may create things in.
                env["TMPDIR"] = cleanup.enter_context(
                    tempfile.TemporaryDirectory(prefix="tmp-", dir=cwd)
                )
        return await _run_process(argv, cwd, timeout, env, name=shown_name)


async def _run_process(
    argv: list[str], cwd: Path, timeout: float, env: dict[str, str], name: str
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cwd,
        env=env,
        start_new_session=True,  # its own process group, so pip's children die with it
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except BaseException as error:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        if isinstance(error, TimeoutError):
            raise StepFailedError(
                f"{name} took more than {timeout:.0f} s and was stopped"
            ) from None
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def read_limited(path: str, max_bytes: int) -> bytes:
    """A file of this machine, refused past max_bytes (StepFailedError)."""
    try:
        if os.stat(path).st_size > max_bytes:
            raise StepFailedError(f"{path} is larger than {max_bytes} bytes")
        return Path(path).read_bytes()
    except OSError as error:
        raise StepFailedError(f"cannot read {path}: {error}") from None


class LocalPlace:
    """This machine, as the server's account, commands confined from the server's files."""

    remote = False
    where = "the server"

    def __init__(self, root: str, confine: Sequence[str] | None) -> None:
        self.root = root
        self.confine = confine

    async def run(self, argv: list[str], *, cwd: str, timeout: float) -> tuple[int, str]:
        return await run(argv, cwd=Path(cwd), timeout=timeout, confine=self.confine)

    async def exists(self, path: str) -> bool:
        return await asyncio.to_thread(os.path.exists, path)

    async def make_folder(self, path: str, *, exclusive: bool) -> None:
        if exclusive:
            await asyncio.to_thread(make_folder, path)
        else:
            await asyncio.to_thread(Path(path).mkdir, parents=True, exist_ok=True)

    async def remove_folder(self, path: str, *, tidy_parents: bool) -> bool:
        return await asyncio.to_thread(remove_folder, path, self.root, tidy_parents=tidy_parents)

    async def read_bytes(self, path: str, max_bytes: int) -> bytes:
        return await asyncio.to_thread(read_limited, path, max_bytes)

    async def put(self, local: Path, path: str) -> None:
        if os.path.abspath(local) != os.path.abspath(path):
            await asyncio.to_thread(shutil.copyfile, local, path)
