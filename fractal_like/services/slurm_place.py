"""Where the server asks SLURM about a resource: on this machine as itself (slurm_sudo), or
on the profile's login node over SSH (slurm_ssh).

The API's SSH connections are its own (the runner keeps its own), one per login and per
event loop, kept open between requests and closed when the API stops.
"""

from __future__ import annotations

import asyncio
import weakref

from pydantic import ValidationError

from ..models import Profile, Resource
from ..runner.slurm.cluster_host import CommandRunner, ServerAccount, SshClusterHost
from ..runner.slurm.facilities import ssh_login
from ..runner.slurm.ssh_host import SshHostRegistry
from ..slurm_config import SlurmConfig

_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SshHostRegistry] = (
    weakref.WeakKeyDictionary()
)


class SlurmUnreachableError(ValueError):
    """The resource's SLURM cannot be asked from here; the message says why."""


def slurm_place(resource: Resource, profile: Profile | None) -> CommandRunner:
    """Where read-only SLURM commands (squeue, sacct, sacctmgr, sshare) run for this resource
    and profile; SlurmUnreachableError when a slurm_ssh login is incomplete."""
    if resource.type != "slurm_ssh":
        return ServerAccount()
    return ssh_host(resource, profile)


def ssh_host(resource: Resource, profile: Profile | None) -> SshClusterHost:
    """The profile's login node of a slurm_ssh resource, over this event loop's kept
    connection; SlurmUnreachableError when the login is incomplete."""
    if profile is None:
        raise SlurmUnreachableError(
            f"resource {resource.name!r} is reached over SSH, and you have no profile on it"
        )
    try:
        login = ssh_login(
            resource, profile, SlurmConfig.model_validate(resource.jobs_runner_config)
        )
    except ValidationError:
        raise SlurmUnreachableError(
            f"the SLURM configuration of resource {resource.name!r} is invalid: tell an admin"
        ) from None
    except ValueError as error:
        raise SlurmUnreachableError(str(error)) from None
    return login.host(ssh_registry())


def ssh_registry() -> SshHostRegistry:
    """This event loop's SSH connections (made on first use)."""
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        # Requests wait for a connection at most this long: never a stalled server.
        registry = SshHostRegistry(connect_timeout=5.0, connect_attempts=2)
        _registries[loop] = registry
    return registry


async def close_connections() -> None:
    """Close this event loop's SSH connections (the API is stopping)."""
    registry = _registries.pop(asyncio.get_running_loop(), None)
    if registry is not None:
        await registry.close()
