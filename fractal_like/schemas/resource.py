"""Compute resources and profiles (admin only)."""

from __future__ import annotations

import os.path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from ..local_runner_config import LocalRunnerConfig
from ..slurm_config import SlurmConfig
from ._base import (
    MAX_INT,
    JsonDict,
    NonEmptyStr,
    ReadModel,
    RequestModel,
    StrictModel,
    UTCTimestamp,
    omittable,
)

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
# One value or line of a generated script: no line breaks, so it cannot add lines of its own.
OneLine = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^\x00\n\r]+$")
]
# A pixi version names a folder (its binary is <folder>/bin/pixi): a plain name, no path.
_PIXI_VERSION = r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$"
_PIXI_MEMORY = r"^[0-9]{1,12}[KMGT]$"


# Seconds between two squeue calls; 0 polls as fast as the runner's own floor allows (the
# fractal client's fixtures send 0). A negative interval means nothing: refused, and said so
# in the schema (the reference states no bound and stores it).
PollInterval = Annotated[int, Field(ge=0, le=MAX_INT)]


class _OpenModel(RequestModel):
    """A configuration read as Fractal reads it: unknown keys are ignored, not refused."""

    model_config = ConfigDict(extra="ignore")


class PythonConfig(_OpenModel):
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


class PixiSlurmConfig(_OpenModel):
    """The SLURM job that runs `pixi install` on a slurm_ssh resource (Fractal's shape)."""

    partition: OneLine
    cpus: int = Field(ge=1, le=4096)
    mem: Annotated[str, StringConstraints(pattern=_PIXI_MEMORY)] | None = None
    mem_per_cpu: Annotated[str, StringConstraints(pattern=_PIXI_MEMORY)] | None = None
    time: OneLine
    preamble: Annotated[list[OneLine], Field(max_length=100)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_memory(self) -> PixiSlurmConfig:
        if (self.mem is None) == (self.mem_per_cpu is None):
            raise ValueError("SLURM_CONFIG needs exactly one of mem and mem_per_cpu")
        return self


class PixiConfig(_OpenModel):
    """How task collection runs pixi: `versions` maps a version to its folder, and all
    those folders are siblings named after their version (Fractal's layout)."""

    versions: dict[Annotated[str, StringConstraints(pattern=_PIXI_VERSION)], AbsolutePath]
    default_version: Annotated[str, StringConstraints(pattern=_PIXI_VERSION)]
    PIXI_CONCURRENT_SOLVES: int = Field(default=4, ge=1, le=1024)
    PIXI_CONCURRENT_DOWNLOADS: int = Field(default=4, ge=1, le=1024)
    TOKIO_WORKER_THREADS: int = Field(default=2, ge=1, le=1024)
    DEFAULT_ENVIRONMENT: OneLine = "default"
    DEFAULT_PLATFORM: OneLine = "linux-64"
    SLURM_CONFIG: PixiSlurmConfig | None = None

    @model_validator(mode="after")
    def _layout(self) -> PixiConfig:
        if self.default_version not in self.versions:
            raise ValueError(f"default_version {self.default_version} is not among versions")
        parents = {os.path.dirname(folder) for folder in self.versions.values()}
        if len(parents) > 1:
            raise ValueError("the folders of all pixi versions must be in one parent folder")
        for version, folder in self.versions.items():
            if os.path.basename(folder) != version:
                raise ValueError(f"the folder of pixi {version} must be named {version}")
        return self


def _pixi_config(value: dict[str, Any]) -> dict[str, Any]:
    # `{}` means "no pixi"; anything else must be a whole configuration, stored normalised.
    return PixiConfig.model_validate(value).model_dump() if value else {}


PixiConfigDict = Annotated[JsonDict, AfterValidator(_pixi_config)]


class ResourceCreate(_OpenModel):
    """A resource body (POST, PUT): unknown fields are ignored, as Fractal's are."""

    name: NonEmptyStr
    type: ResourceType
    host: Annotated[str, StringConstraints(pattern=_HOST)] | None = None
    jobs_local_dir: AbsolutePath
    tasks_local_dir: AbsolutePath
    jobs_runner_config: JsonDict = Field(default_factory=dict)
    jobs_slurm_python_worker: AbsolutePath | None = None
    jobs_poll_interval: PollInterval = 5
    tasks_python_config: PythonConfig | None = None
    tasks_pixi_config: PixiConfigDict = Field(default_factory=dict)
    prevent_new_submissions: bool = False

    @field_validator("tasks_python_config", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # A resource read back (GET) shows "none" as {}: a PUT of it means the same.
        return None if value == {} else value

    @model_validator(mode="after")
    def _valid_for_type(self) -> ResourceCreate:
        pixi = self.tasks_pixi_config
        if self.type == "slurm_ssh" and pixi and pixi.get("SLURM_CONFIG") is None:
            raise ValueError("tasks_pixi_config of a slurm_ssh resource needs SLURM_CONFIG")
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
        if self.type != "slurm_ssh" and "ssh" in self.jobs_runner_config:
            raise ValueError("only a slurm_ssh resource may set jobs_runner_config.ssh")
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
    jobs_poll_interval: PollInterval = omittable()
    tasks_python_config: PythonConfig | None = None
    tasks_pixi_config: PixiConfigDict = omittable()
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
    tasks_pixi_config: dict[str, Any]
    prevent_new_submissions: bool
    timestamp_created: UTCTimestamp


class ProfileCreate(_OpenModel):
    """A profile body (POST, PUT): unknown fields (the client's `resource_id`) are ignored."""

    name: NonEmptyStr
    resource_type: ResourceType | None = None
    username: PosixUser | None = None
    ssh_key_path: AbsolutePath | None = None
    jobs_remote_dir: AbsolutePath | None = None
    tasks_remote_dir: AbsolutePath | None = None
    pixi_cache_dir: AbsolutePath | None = None


class ProfileUpdate(StrictModel):
    """Null clears the other fields (checked against the resource's type)."""

    name: NonEmptyStr = omittable()
    username: PosixUser | None = None
    ssh_key_path: AbsolutePath | None = None
    jobs_remote_dir: AbsolutePath | None = None
    tasks_remote_dir: AbsolutePath | None = None
    pixi_cache_dir: AbsolutePath | None = None


class ProfileRead(ReadModel):
    id: int
    resource_id: int
    name: str
    resource_type: str
    username: str | None
    ssh_key_path: str | None
    jobs_remote_dir: str | None
    tasks_remote_dir: str | None
    pixi_cache_dir: str | None
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
    if resource_type != "slurm_ssh" and profile.get("pixi_cache_dir"):
        # As in Fractal: only a slurm_ssh profile runs pixi on a host of its own.
        raise ValueError("only a slurm_ssh profile may set pixi_cache_dir")
    if resource_type == "slurm_ssh":
        for key in ("ssh_key_path", "jobs_remote_dir"):
            if not profile.get(key):
                raise ValueError(f"a slurm_ssh profile needs {key}")


class SetupCheckRead(BaseModel):
    """One setup check of a SLURM resource: what was checked, and what to fix if it failed."""

    name: str
    ok: bool
    message: str
    # True: the check could not be made (the cluster did not answer, the sudo rules do not
    # allow the command); a save is not refused for it.
    inconclusive: bool = False
