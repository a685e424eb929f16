"""What a SLURM resource and profile must hold before anything is asked of the cluster:
a valid SLURM configuration, a worker Python, a plain cluster user name.

One copy, read by the executor's setup (setup.py: a job that cannot run says why) and by
the setup checks (checks.py: a resource that could not run a job is refused when saved).
"""

from __future__ import annotations

from pydantic import ValidationError

from ...models import Profile, Resource
from ...slurm_config import SlurmConfig
from ..accounts import check_account


class SetupError(ValueError):
    """`problem` says what is wrong, `fix` what an admin does about it."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}: {fix}")
        self.problem = problem
        self.fix = fix


def slurm_config_of(resource: Resource) -> SlurmConfig:
    try:
        return SlurmConfig.model_validate(resource.jobs_runner_config)
    except ValidationError as error:
        raise SetupError(
            f"the SLURM configuration of resource {resource.name!r} is invalid: {error}",
            "fix jobs_runner_config",
        ) from None


def worker_python_of(resource: Resource) -> str:
    if not resource.jobs_slurm_python_worker:
        raise SetupError(
            f"resource {resource.name!r} has no jobs_slurm_python_worker",
            "set it to the Python that runs units on the compute nodes",
        )
    return resource.jobs_slurm_python_worker


def cluster_user_of(profile: Profile) -> str:
    if not profile.username:
        raise SetupError(
            f"profile {profile.name!r} has no cluster username", "set the cluster user it runs as"
        )
    try:
        return check_account(profile.username)
    except ValueError:
        raise SetupError(
            f"{profile.username!r} is not a valid cluster user name",
            "set the profile's username to a Unix account name",
        ) from None
