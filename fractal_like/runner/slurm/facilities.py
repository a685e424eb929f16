"""What a runner keeps for all its SLURM jobs, whatever their resource.

One poller per place SLURM is asked: this machine (slurm_sudo) and each SSH login
(slurm_ssh), so one squeue per interval serves every job watched there; one SSH
connection per login (the registry), shared by the executors, pollers and usage reads of
every job of that login.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
