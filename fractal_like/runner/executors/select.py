"""Which executor runs a job: chosen from the resource and profile of the job's user."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from ...local_runner_config import LocalRunnerConfig
from ...models import Job, Profile, Resource
from ...worker_init import (
    WorkerInitError,
    exports,
    local_refusal,
    needs_shell,
    parse_worker_init,
)
from ..slurm.facilities import SlurmFacilities
from ..slurm.setup import slurm_executor
from .base import Executor, ExecutorUnavailableError
from .local import LocalExecutor


@dataclass(frozen=True)
class RunnerFacilities:
    """What a runner lends every executor it makes, whatever the job."""

    database: AsyncEngine  # SLURM jobs are recorded there before and after sbatch
    slurm: SlurmFacilities  # pollers and SSH connections shared by all its SLURM jobs
    parallelism: int | None = None  # units at once locally; over the resource's setting
    # The server's files that local units must not reach (None: units are not confined).
    private_paths: Callable[[], list[str]] | None = None


def executor_for(
    job: Job, resource: Resource | None, profile: Profile | None, facilities: RunnerFacilities
) -> Executor:
    """The executor of the job; ExecutorUnavailableError says in a sentence why there is none.

    No profile (or no resource) means the runner's own machine, as the runner's account."""
    if resource is None or profile is None:
        return _local_executor(job, None, None, facilities)
    if resource.type == "local":
        return _local_executor(job, resource, profile, facilities)
    if resource.type in ("slurm_sudo", "slurm_ssh"):
        return slurm_executor(resource, profile, job, facilities.database, facilities.slurm)
    raise ExecutorUnavailableError(
        f"resource {resource.name!r} is of type {resource.type!r}, which this runner "
        "cannot drive (it runs 'local', 'slurm_sudo' and 'slurm_ssh' resources)"
    )


def _local_executor(
    job: Job, resource: Resource | None, profile: Profile | None, facilities: RunnerFacilities
) -> LocalExecutor:
    config = LocalRunnerConfig()
    if resource is not None:
        try:
            config = LocalRunnerConfig.model_validate(resource.jobs_runner_config)
        except ValidationError as error:
            raise ExecutorUnavailableError(
                f"the runner configuration of resource {resource.name!r} is invalid: {error}"
            ) from None
    account = profile.username if profile is not None and profile.username else None
    return LocalExecutor(
        facilities.parallelism or config.parallel_tasks_per_job,
        config.memory_limit_per_unit_mb,
        private_paths=facilities.private_paths() if facilities.private_paths else None,
        account=account,
        working_dir=Path(job.working_dir or ""),
        # Units run as another account: a Python that account can run.
        python=resource.jobs_slurm_python_worker if resource is not None and account else None,
        exports=_local_exports(job),
    )


def _local_exports(job: Job) -> dict[str, str]:
    """The variables of the job's worker_init, which units here get in their environment.

    Submit refuses what needs a shell on a local resource; a job from before that check
    fails with a sentence rather than run without the lines it asked for."""
    try:
        lines = parse_worker_init(job.worker_init)
    except WorkerInitError as error:
        raise ExecutorUnavailableError(str(error)) from None
    shell = needs_shell(lines)
    if shell:
        raise ExecutorUnavailableError(local_refusal(shell[0]))
    return exports(lines)
