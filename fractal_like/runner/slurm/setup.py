"""Build the SLURM executor of a job from its resource and profile (slurm_sudo, slurm_ssh)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from ...models import Job, Profile, Resource
from ..executors.base import ExecutorUnavailableError
from .commands import SlurmCommands
from .executor import SlurmExecutor, SlurmSettings
from .facilities import SlurmFacilities, ssh_login
from .job_files import ClusterFiles, SharedClusterFiles, SshClusterFiles
from .poller import SlurmPoller
from .requirements import SetupError, cluster_user_of, slurm_config_of, worker_python_of
from .store import SlurmJobStore


def slurm_executor(
    resource: Resource,
    profile: Profile,
    job: Job,
    engine: AsyncEngine,
    slurm: SlurmFacilities,
) -> SlurmExecutor:
    """The executor; ExecutorUnavailableError says why the resource or profile cannot run it."""
    try:
        config = slurm_config_of(resource)
        python_worker = worker_python_of(resource)
        username = cluster_user_of(profile)
    except SetupError as error:
        raise ExecutorUnavailableError(f"{error.problem}: tell an admin") from None
    commands: SlurmCommands
    files: ClusterFiles
    poller: SlurmPoller
    try:
        if resource.type == "slurm_ssh":
            login = ssh_login(resource, profile, config)
            host = login.host(slurm.ssh)
            commands = SlurmCommands(username, slurm_conf=None, host=host)
            poller = slurm.ssh_poller(login)
            if not job.working_dir_user:
                raise ExecutorUnavailableError(f"job {job.id} has no folder on the cluster")
            files = SshClusterFiles(host, job.working_dir_user, Path(job.working_dir or ""))
        else:
            commands = SlurmCommands(username)
            poller = slurm.poller
            files = SharedClusterFiles(commands.cluster, Path(job.working_dir or ""))
    except ValueError as error:
        raise ExecutorUnavailableError(str(error)) from None
    poller.max_interval = max(poller.min_interval, float(resource.jobs_poll_interval))
    exports_base = profile.tasks_remote_dir or profile.jobs_remote_dir
    exports = (
        {
            name: str(Path(exports_base) / relative)
            for name, relative in config.user_local_exports.items()
        }
        if exports_base
        else {}
    )
    settings = SlurmSettings(
        config=config,
        python_worker=python_worker,
        job_id=job.id or 0,
        account=job.slurm_account,
        extra_env=exports,
        worker_init=job.worker_init,
    )
    return SlurmExecutor(settings, commands, poller, SlurmJobStore(engine, job.id or 0), files)
