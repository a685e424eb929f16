"""The SLURM configuration of a resource (JSON), validated; shared by the API and the runner."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

# Values written into `#SBATCH` lines: no newlines, no shell metacharacters that would
# let a value start a second directive or command.
_SAFE_VALUE = r"^[A-Za-z0-9_.,:=@+%/\-\[\]]+$"
SbatchValue = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=_SAFE_VALUE)]
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^\d+$")
_MEM = re.compile(r"^(\d+)([KMGT]?)B?$", re.IGNORECASE)
_EXPORT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEM_FACTORS = {"": 1, "K": 1e-3, "M": 1, "G": 1000, "T": 1000 * 1000}


def memory_in_mb(value: int | str) -> int:
    """SLURM memory as MB: an int is MB already; '100M', '3G', '1T' use decimal units."""
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("memory must be positive")
        return value
    match = _MEM.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a memory size such as 4000, '500M' or '4G'")
    number, unit = match.groups()
    return max(1, int(int(number) * _MEM_FACTORS[unit.upper()]))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlurmSection(_Strict):
    """What one SLURM job asks for; also the shape of named overrides."""

    partition: SbatchValue | None = None
    cpus_per_task: int | None = Field(default=None, gt=0, le=4096)
    mem: int | str | None = None
    time: str | None = None
    constraint: SbatchValue | None = None
    gres: SbatchValue | None = None
    gpus: SbatchValue | None = None
    account: SbatchValue | None = None
    exclude: SbatchValue | None = None
    nodelist: SbatchValue | None = None
    nodes: int | None = Field(default=None, gt=0)
    extra_lines: list[Annotated[str, StringConstraints(max_length=1024)]] = Field(
        default_factory=list, max_length=100
    )
    shebang_line: str = "#!/bin/sh"
    use_mem_per_cpu: bool = False

    @field_validator("mem")
    @classmethod
    def _mem(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            memory_in_mb(value)
        return value

    @field_validator("time")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and not _TIME.match(value):
            raise ValueError(f"{value!r} is not a SLURM time such as '60', '1:00:00' or '1-00:00'")
        return value

    @field_validator("extra_lines")
    @classmethod
    def _lines(cls, value: list[str]) -> list[str]:
        for line in value:
            if "\n" in line or "\r" in line or "\x00" in line:
                raise ValueError("an extra line cannot contain line breaks")
        return value

    @field_validator("shebang_line")
    @classmethod
    def _shebang(cls, value: str) -> str:
        if not value.startswith("#!") or "\n" in value:
            raise ValueError("the shebang line must start with '#!' and be one line")
        return value


class DefaultSlurmSection(SlurmSection):
    partition: SbatchValue


class BatchingConfig(_Strict):
    target_cpus_per_job: int = Field(gt=0)
    max_cpus_per_job: int = Field(gt=0)
    target_mem_per_job: int | str
    max_mem_per_job: int | str
    target_num_jobs: int = Field(gt=0)
    max_num_jobs: int = Field(gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> BatchingConfig:
        if self.target_cpus_per_job > self.max_cpus_per_job:
            raise ValueError("target_cpus_per_job exceeds max_cpus_per_job")
        if memory_in_mb(self.target_mem_per_job) > memory_in_mb(self.max_mem_per_job):
            raise ValueError("target_mem_per_job exceeds max_mem_per_job")
        if self.target_num_jobs > self.max_num_jobs:
            raise ValueError("target_num_jobs exceeds max_num_jobs")
        return self


_ABSOLUTE_PATH = r"^/[A-Za-z0-9_.,:=@+%/\-]*$"
AbsoluteClusterPath = Annotated[
    str, StringConstraints(min_length=1, max_length=4096, pattern=_ABSOLUTE_PATH)
]


class SshSettings(_Strict):
    """How a slurm_ssh resource reaches its login node (the resource's `host`), beyond
    Fractal's fields: the port, where the host's key is known, and the login node's
    SLURM_CONF when its SLURM commands need one."""

    port: int = Field(default=22, gt=0, lt=65536)
    # A file of the server's; None: ~/.ssh/known_hosts of the account the runner runs as.
    known_hosts: AbsoluteClusterPath | None = None
    # Trust a host not yet in known_hosts on first contact (and store its key there); a
    # listed host presenting another key is always refused.
    accept_new_host_keys: bool = False
    slurm_conf: AbsoluteClusterPath | None = None


class SlurmConfig(_Strict):
    default_slurm_config: DefaultSlurmSection
    gpu_slurm_config: SlurmSection | None = None
    batching_config: BatchingConfig
    user_local_exports: dict[str, Annotated[str, StringConstraints(max_length=1024)]] = Field(
        default_factory=dict
    )
    ssh: SshSettings | None = None  # slurm_ssh resources only

    @field_validator("user_local_exports")
    @classmethod
    def _exports(cls, value: dict[str, str]) -> dict[str, str]:
        for name, relpath in value.items():
            if not _EXPORT_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if relpath.startswith("/") or ".." in relpath.split("/"):
                raise ValueError(f"export {name} must be a relative path inside the cache")
        return value
