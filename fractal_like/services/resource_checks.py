"""The setup checks of a SLURM resource, run when it or one of its profiles is saved (and at
any time by `GET /admin/v2/resource/{id}/check/` and `fractal-like resource check ID`).

A save that fails a check is refused with every failed check in plain words. A check that
could not be made (the cluster did not answer, the checks ran out of time, the sudo rules
do not allow the command) does not refuse: an admin must be able to edit a resource while
its cluster is down (to set prevent_new_submissions, say). It is logged, and the check
route tells the rest once the cluster is back. A save that changes nothing the checks read
(a name, the poll interval, prevent_new_submissions) runs none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from ..models import Profile, Resource
from ..runner.slurm.checks import (
    Check,
    HostFactory,
    check_profiles,
    check_resource,
    check_server,
)
from ..runner.slurm.commands import SlurmCommands
from ..runner.slurm.requirements import cluster_user_of
from .errors import InvalidError
from .slurm_place import ssh_host

logger = logging.getLogger("fractal_like.services.resource_checks")

SAVE_DEADLINE = 30.0  # seconds for every check of one save: a request never hangs longer
RESOURCE_FIELDS = (
    "type",
    "host",
    "jobs_runner_config",
    "jobs_slurm_python_worker",
    "jobs_local_dir",
)
PROFILE_FIELDS = ("username", "jobs_remote_dir", "ssh_key_path")

# What a save runs: (resource, its profiles to check) -> the checks. The admin routes take
# it as a dependency, so tests of the routes' other rules can run without a cluster.
SaveChecker = Callable[[Resource, list[Profile], bool], Awaitable[list[Check]]]


def host_factory(resource: Resource) -> HostFactory | None:
    """How a profile of this resource reaches its cluster user, as its executor will; None
    for a resource without SLURM."""
    if resource.type == "slurm_sudo":
        # The executor's own host: sudo on this machine, SLURM_CONF passed on.
        return lambda profile: SlurmCommands(cluster_user_of(profile)).cluster
    if resource.type == "slurm_ssh":
        # The profile's SSH login (the API's kept connection); SlurmUnreachableError, a
        # ValueError, says what the login lacks.
        return lambda profile: ssh_host(resource, profile)
    return None


async def all_checks(resource: Resource, profiles: list[Profile]) -> list[Check]:
    """Every check of the resource and these profiles (none for a resource not checked)."""
    host_for = host_factory(resource)
    if host_for is None:
        return []
    if resource.type == "slurm_ssh":
        # Its SLURM is the login node's: asked through each profile, not by the server.
        return await check_profiles(resource, profiles, host_for)
    return await check_resource(resource, profiles, host_for)


async def checks_on_save(resource: Resource, profiles: list[Profile], server: bool) -> list[Check]:
    """The checks of a save: the server's if `server`, and those of `profiles`, in time."""
    host_for = host_factory(resource)
    if host_for is None:
        return []

    async def run() -> list[Check]:
        server_side = server and resource.type == "slurm_sudo"  # slurm_ssh: the login node's
        checks = await check_server(resource) if server_side else []
        if checks and not checks[0].ok:
            return checks  # no SLURM_CONF: the profiles' commands could not find SLURM
        return checks + await check_profiles(resource, profiles, host_for)

    try:
        return await asyncio.wait_for(run(), SAVE_DEADLINE)
    except TimeoutError:
        return [
            Check(
                "setup checks",
                False,
                f"they did not finish within {SAVE_DEADLINE:.0f} s (is the cluster slow or "
                "down?): saved unchecked",
                inconclusive=True,
            )
        ]


def changed(before: object, after: object, fields: Iterable[str]) -> bool:
    return any(getattr(before, name) != getattr(after, name) for name in fields)


def refuse_failed(what: str, checks: list[Check]) -> None:
    """Raise InvalidError naming every failed check; log those that could not be made."""
    failed = [check for check in checks if not check.ok and not check.inconclusive]
    for check in checks:
        if check.inconclusive:
            logger.warning("%s saved, one check not made: %s: %s", what, check.name, check.message)
    if failed:
        reasons = "; ".join(f"{check.name}: {check.message}" for check in failed)
        raise InvalidError(
            f"{what} was not saved, because jobs could not run with it. {reasons}. "
            "Fix it and save again."
        )


async def check_resource_save(
    checker: SaveChecker,
    resource: Resource,
    before: Resource | None,
    profiles: Callable[[], Awaitable[list[Profile]]],
) -> None:
    """Refuse a new (`before` None) or changed resource that fails a check."""
    if before is not None and not changed(before, resource, RESOURCE_FIELDS):
        return
    # A new resource has no profiles; a changed one's profiles run its new settings.
    with_profiles = await profiles() if before is not None else []
    checks = await checker(resource, with_profiles, True)
    refuse_failed(f"resource {resource.name!r}", checks)


async def check_profile_save(
    checker: SaveChecker, resource: Resource, profile: Profile, before: Profile | None
) -> None:
    """Refuse a new (`before` None) or changed profile that fails a check."""
    if before is not None and not changed(before, profile, PROFILE_FIELDS):
        return
    checks = await checker(resource, [profile], False)
    refuse_failed(f"profile {profile.name!r}", checks)
