"""What SLURM's queue shows a user: `squeue` in Fractal's format, for one of three scopes.

The command is an argv list (never a shell); the only values that reach it from the
database (the profile's cluster user name, the user's SLURM accounts) are checked to be
plain names first. `squeue` only reads state, so it runs as the server's own account, as
the runner's queue polls do (runner/slurm/commands.py), with the server's SLURM_CONF; for a
slurm_ssh resource, on its login node as the profile's user (services/slurm_place.py).
"""

from __future__ import annotations

import re
from enum import StrEnum

from ..models import Profile, Resource, UserOAuth
from ..runner.accounts import check_account
from ..runner.slurm.commands import SlurmCommandError
from .errors import InvalidError
from .slurm_place import SlurmUnreachableError, slurm_place

SLURM_RESOURCE_TYPES = ("slurm_sudo", "slurm_ssh")
# Fractal's columns: id, partition, name, user, account, state, time, nodes, CPUs, memory,
# and the node list or the reason the job waits.
SQUEUE_FORMAT = "%.12i %.9P %.24j %.14u %.14a %.11T %.12M %.6D %.4C %.10m %R"
SQUEUE_TIMEOUT_SECONDS = 30.0
# A SLURM account name as sacctmgr takes it; a comma would split the --accounts list.
_ACCOUNT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class Scope(StrEnum):
    ALL = "all"  # every job of the cluster
    USER = "user"  # the jobs of the profile's cluster user
    ACCOUNTS = "accounts"  # the jobs charged to the user's SLURM accounts


class SqueueUnavailableError(InvalidError, ValueError):
    """squeue cannot be asked for this user; the message says why."""


class SqueueFailedError(RuntimeError):
    """squeue ran but did not answer."""


def squeue_argv(scope: Scope, user: UserOAuth, profile: Profile, resource: Resource) -> list[str]:
    """The squeue command for `scope`; SqueueUnavailableError when it cannot be built safely."""
    if resource.type not in SLURM_RESOURCE_TYPES:
        raise SqueueUnavailableError(
            f"This endpoint is not available for resource {resource.name!r} of type "
            f"{resource.type!r}: only SLURM resources ({', '.join(SLURM_RESOURCE_TYPES)}) "
            "have a queue."
        )
    flags: list[str] = []
    if scope == Scope.USER:
        try:
            flags = [f"--user={check_account(profile.username or '')}"]
        except ValueError:
            raise SqueueUnavailableError(
                f"profile {profile.name!r} has no valid cluster username: tell an admin"
            ) from None
    elif scope == Scope.ACCOUNTS and user.slurm_accounts:
        # As in Fractal, a user without accounts sees the whole queue.
        bad = [account for account in user.slurm_accounts if not _ACCOUNT.match(account)]
        if bad:
            raise SqueueUnavailableError(
                f"your SLURM account {bad[0][:80]!r} is not a plain account name: tell an admin"
            )
        flags = [f"--accounts={','.join(user.slurm_accounts)}"]
    return ["squeue", *flags, f"--format={SQUEUE_FORMAT}"]


async def read_queue(argv: list[str], resource: Resource, profile: Profile | None) -> str:
    """squeue's output, asked where the resource's SLURM is (slurm_place); SqueueFailedError
    (logged by the caller) when it cannot run or fails."""
    try:
        place = slurm_place(resource, profile)
    except SlurmUnreachableError as error:
        raise SqueueUnavailableError(str(error)) from None
    try:
        result = await place.run(argv, timeout=SQUEUE_TIMEOUT_SECONDS, idempotent=True)
    except SlurmCommandError as error:
        raise SqueueFailedError(str(error)) from None
    if result.returncode != 0:
        raise SqueueFailedError(f"exit code {result.returncode}: {result.stderr.strip()[-500:]}")
    return result.stdout
