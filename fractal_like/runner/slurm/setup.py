"""Build the SLURM executor of a job from its resource and profile, or say why not."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from ...models import Job, Profile, Resource
from ...slurm_config import SlurmConfig
from .commands import SlurmCommands
from .executor import SlurmExecutor, SlurmSettings
from .poller import SlurmPoller
from .store import SlurmJobStore


def slurm_executor_for(
    resource: Resource,
    profile: Profile,
    job: Job,
    engine: AsyncEngine,
    poller: SlurmPoller,
) -> SlurmExecutor | str:
    """The executor, or a plain sentence saying why this resource cannot run the job."""
    if resource.type != "slurm_sudo":
        return (
            f"resource {resource.name!r} is of type {resource.type!r}, which this runner "
            "cannot drive yet (it runs 'local' and 'slurm_sudo' resources)"
        )
    try:
        config = SlurmConfig.model_validate(resource.jobs_runner_config)
    except ValidationError as error:
        return f"the SLURM configuration of resource {resource.name!r} is invalid: {error}"
    if not resource.jobs_slurm_python_worker:
        return f"resource {resource.name!r} has no jobs_slurm_python_worker: tell an admin"
    if not profile.username:
        return f"profile {profile.name!r} has no cluster username: tell an admin"
    try:
        commands = SlurmCommands(profile.username)
    except ValueError as error:
        return str(error)
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
        python_worker=resource.jobs_slurm_python_worker,
        job_id=job.id or 0,
        working_dir=Path(job.working_dir or ""),
        account=job.slurm_account,
        extra_env=exports,
    )
    return SlurmExecutor(settings, commands, poller, SlurmJobStore(engine, job.id or 0))
