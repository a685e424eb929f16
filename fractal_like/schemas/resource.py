"""Compute resources and profiles (admin only)."""

from __future__ import annotations

import os.path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from ..slurm_config import LocalRunnerConfig, SlurmConfig
from ._base import JsonDict, NonEmptyStr, ReadModel, StrictModel, UTCTimestamp, omittable

ResourceType = Literal["local", "slurm_sudo", "slurm_ssh"]
_POSIX_USER = r"^[a-z_][a-z0-9_-]{0,31}\$?$"
_HOST = r"^[A-Za-z0-9.\-]{1,253}$"
_PY_VERSION = r"^3\.\d{1,2}$"


def _absolute(value: str) -> str:
    if not value.startswith("/") or "\x00" in value:
        raise ValueError(f"{value!r} is not an absolute path")
    return os.path.normpath(value)


AbsolutePath = Annotated[
    str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_absolute)
]
PosixUser = Annotated[str, StringConstraints(pattern=_POSIX_USER)]


# One argv item of the pip commands of task collection (never passed through a shell).
PipArg = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[^\x00\n\r]+$")]


class PythonConfig(StrictModel):
    default_version: Annotated[str, StringConstraints(pattern=_PY_VERSION)]
    versions: dict[Annotated[str, StringConstraints(pattern=_PY_VERSION)], AbsolutePath]
    # Added to every `pip install` of task collection, e.g. ["--index-url", URL] for a
    # mirror, or ["--no-index", "--find-links", DIR] on a cluster without internet.
    pip_extra_args: Annotated[list[PipArg], Field(max_length=64)] = Field(default_factory=list)
    pip_cache_dir: AbsolutePath | None = None

    @model_validator(mode="after")
    def _default_known(self) -> PythonConfig:
        if self.default_version not in self.versions:
            raise ValueError(f"default_version {self.default_version} is not among versions")
        return self


class ResourceCreate(StrictModel):
    name: NonEmptyStr
    type: ResourceType
    host: Annotated[str, StringConstraints(pattern=_HOST)] | None = None
    jobs_local_dir: AbsolutePath
    tasks_local_dir: AbsolutePath
    jobs_runner_config: JsonDict = Field(default_factory=dict)
    jobs_slurm_python_worker: AbsolutePath | None = None
    jobs_poll_interval: int = Field(default=5, ge=1, le=3600)
    tasks_python_config: PythonConfig | None = None
    prevent_new_submissions: bool = False

    @model_validator(mode="after")
    def _valid_for_type(self) -> ResourceCreate:
        if self.type == "local":
            self.jobs_runner_config = LocalRunnerConfig.model_validate(
                self.jobs_runner_config
            ).model_dump(exclude_none=True)
            return self
        # SLURM resources: the configuration must be complete and valid.
        self.jobs_runner_config = SlurmConfig.model_validate(self.jobs_runner_config).model_dump(
            exclude_none=True
        )
        if self.jobs_slurm_python_worker is None:
            raise ValueError(
                f"a {self.type} resource needs jobs_slurm_python_worker, the Python "
                "interpreter that runs units on the compute nodes"
            )
        if self.type == "slurm_ssh" and not self.host:
            raise ValueError("a slurm_ssh resource needs host, the login node to reach")
        return self


class ResourceUpdate(StrictModel):
    """A partial update; the merged resource is validated again as a whole.

    Null clears host, jobs_slurm_python_worker and tasks_python_config (where the type
    allows it); the other fields are left out or given."""

    name: NonEmptyStr = omittable()
    host: Annotated[str, StringConstraints(pattern=_HOST)] | None = None
    jobs_local_dir: AbsolutePath = omittable()
    tasks_local_dir: AbsolutePath = omittable()
    jobs_runner_config: JsonDict = omittable()
    jobs_slurm_python_worker: AbsolutePath | None = None
    jobs_poll_interval: int = omittable(ge=1, le=3600)
    tasks_python_config: PythonConfig | None = None
    prevent_new_submissions: bool = omittable()


class ResourceRead(ReadModel):
    id: int
    name: str
    type: str
    host: str | None
    jobs_local_dir: str
    tasks_local_dir: str
    jobs_runner_config: dict[str, Any]
    jobs_slurm_python_worker: str | None
    jobs_poll_interval: int
    tasks_python_config: dict[str, Any]
    prevent_new_submissions: bool
    timestamp_created: UTCTimestamp


class ProfileCreate(StrictModel):
    name: NonEmptyStr
    resource_type: ResourceType | None = None
    username: PosixUser | None = None
    ssh_key_path: AbsolutePath | None = None
    jobs_remote_dir: AbsolutePath | None = None
    tasks_remote_dir: AbsolutePath | None = None


class ProfileUpdate(StrictModel):
    """Null clears the other fields (checked against the resource's type)."""

    name: NonEmptyStr = omittable()
    username: PosixUser | None = None
    ssh_key_path: AbsolutePath | None = None
    jobs_remote_dir: AbsolutePath | None = None
    tasks_remote_dir: AbsolutePath | None = None


class ProfileRead(ReadModel):
    id: int
    resource_id: int
    name: str
    resource_type: str
    username: str | None
    ssh_key_path: str | None
    jobs_remote_dir: str | None
    tasks_remote_dir: str | None
    timestamp_created: UTCTimestamp


def check_profile_for_resource(resource_type: str, profile: dict[str, Any]) -> None:
    """Raise ValueError unless the profile has what its resource type needs."""
    if profile.get("resource_type") not in (None, resource_type):
        raise ValueError(
            f"resource_type {profile['resource_type']!r} does not match the resource "
            f"({resource_type!r})"
        )
    if resource_type in ("slurm_sudo", "slurm_ssh") and not profile.get("username"):
        raise ValueError(f"a {resource_type} profile needs username, the cluster account")
    if resource_type == "local" and profile.get("username") and not profile.get("jobs_remote_dir"):
        # Its units run as that account, which must own the folders they write in.
        raise ValueError(
            "a local profile with a username needs jobs_remote_dir, a folder that account "
            "can write, for the files of its jobs"
        )
    if resource_type == "slurm_ssh":
        for key in ("ssh_key_path", "jobs_remote_dir"):
            if not profile.get(key):
                raise ValueError(f"a slurm_ssh profile needs {key}")
