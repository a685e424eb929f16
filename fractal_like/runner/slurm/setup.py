"""Build the SLURM executor of a job from its slurm_sudo resource and profile."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from ...models import Job, Profile, Resource
from ..executors.base import ExecutorUnavailableError
from .commands import SlurmCommands
from .executor import SlurmExecutor, SlurmSettings
from .poller import SlurmPoller
from .requirements import SetupError, cluster_user_of, slurm_config_of, worker_python_of
from .store import SlurmJobStore


def slurm_sudo_executor(
    resource: Resource,
    profile: Profile,
    job: Job,
    engine: AsyncEngine,
    poller: SlurmPoller,
) -> SlurmExecutor:
    """The executor; ExecutorUnavailableError says why the resource or profile cannot run it."""
    try:
        config = slurm_config_of(resource)
        python_worker = worker_python_of(resource)
        commands = SlurmCommands(cluster_user_of(profile))
    except SetupError as error:
        raise ExecutorUnavailableError(f"{error.problem}: tell an admin") from None
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
        working_dir=Path(job.working_dir or ""),
        account=job.slurm_account,
        extra_env=exports,
    )
    return SlurmExecutor(settings, commands, poller, SlurmJobStore(engine, job.id or 0))
