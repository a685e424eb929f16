"""Commands run as a user's Unix account, with exactly the environment we choose.

The SLURM commands of a slurm_sudo profile and the local launcher of a local profile that
names a `username` both run as that account through `sudo -n -u <account>`. sudo resets the
environment by its own rules (sudoers may keep variables), so the environment is set
explicitly with `env -i`: the command sees those variables and nothing else. A command run
as the server's own account goes through `env -i` too, for the same reason: it must not
inherit the server's variables (its secrets among them).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
from collections.abc import Mapping

POSIX_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")
FOLDER_TIMEOUT_SECONDS = 120.0


class AccountCommandError(RuntimeError):
    """A command run as a user's account failed; the message says why, in plain words."""


def server_user() -> str:
    """The account this process runs as."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for our uid (containers)
        return str(os.getuid())


def check_account(username: str) -> str:
    """The name, if it is a plain Unix account name (it becomes an argv item of sudo)."""
    if not POSIX_USER.match(username):
        raise ValueError(f"{username!r} is not a valid Unix account name")
    return username


def as_account(username: str | None, argv: list[str], environment: Mapping[str, str]) -> list[str]:
    """argv run as `username` (None: the server's own account) with exactly `environment`."""
    command = ["env", "-i", *(f"{name}={value}" for name, value in environment.items()), *argv]
    if username is None or username == server_user():
        return command
    return ["sudo", "-n", "-u", check_account(username), *command]


async def make_folder(username: str | None, path: str, environment: Mapping[str, str]) -> None:
    """Create `path` (and its parents) as `username`, so that account owns it (0755: the
    runner, another account, reads what the units write there)."""
    argv = as_account(username, ["mkdir", "-p", "-m", "0755", "--", path], environment)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), FOLDER_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as error:
        raise AccountCommandError(f"cannot create {path!r} as {username!r}: {error}") from None
    if process.returncode != 0:
        lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
        why = lines[-1].strip() if lines else f"exit code {process.returncode}"
        raise AccountCommandError(f"user {username!r} cannot create {path!r}: {why}")
