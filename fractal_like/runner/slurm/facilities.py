"""What a runner keeps for all its SLURM jobs, whatever their resource.

One poller per place SLURM is asked: this machine (slurm_sudo) and each SSH login
(slurm_ssh), so one squeue per interval serves every job watched there; one SSH
connection per login (the registry), shared by the executors, pollers and usage reads of
every job of that login.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ...models import Profile, Resource
from ...slurm_config import SlurmConfig
from .cluster_host import SshClusterHost
from .commands import SlurmReader
from .poller import SlurmPoller
from .ssh_host import SshHostRegistry, SshTarget


@dataclass(frozen=True)
class SshLogin:
    """A login node as one profile reaches it, and the SLURM_CONF its commands need."""

    target: SshTarget
    slurm_conf: str | None = None

    def host(self, registry: SshHostRegistry) -> SshClusterHost:
        environment = {"SLURM_CONF": self.slurm_conf} if self.slurm_conf else {}
        return SshClusterHost(registry.host(self.target), environment)


@dataclass
class SlurmFacilities:
    poller: SlurmPoller = field(default_factory=SlurmPoller)  # this machine's SLURM
    ssh: SshHostRegistry = field(default_factory=SshHostRegistry)
    _ssh_pollers: dict[SshLogin, SlurmPoller] = field(default_factory=dict)

    def ssh_poller(self, login: SshLogin) -> SlurmPoller:
        """The poller of jobs submitted through this login (made on first use)."""
        poller = self._ssh_pollers.get(login)
        if poller is None:
            poller = SlurmPoller(reader=SlurmReader(login.host(self.ssh)))
            self._ssh_pollers[login] = poller
        return poller

    @property
    def pollers(self) -> list[SlurmPoller]:
        return [self.poller, *self._ssh_pollers.values()]

    async def close(self) -> None:
        for poller in self.pollers:
            await poller.close()
        await self.ssh.close()


def ssh_login(resource: Resource, profile: Profile, config: SlurmConfig) -> SshLogin:
    """How the profile reaches the resource's login node; ValueError says what is missing."""
    if not resource.host:
        raise ValueError(f"resource {resource.name!r} has no host to reach: tell an admin")
    if not profile.ssh_key_path:
        raise ValueError(f"profile {profile.name!r} has no ssh_key_path: tell an admin")
    ssh = config.ssh
    known_hosts = (ssh.known_hosts if ssh else None) or os.path.expanduser("~/.ssh/known_hosts")
    target = SshTarget(
        host=resource.host,
        user=profile.username or "",
        key_path=profile.ssh_key_path,
        known_hosts=known_hosts,
        port=ssh.port if ssh else 22,
        accept_new=ssh.accept_new_host_keys if ssh else False,
    )
    return SshLogin(target, ssh.slurm_conf if ssh else None)
