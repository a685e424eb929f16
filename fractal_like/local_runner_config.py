"""The runner configuration of a local resource (JSON), validated; read by the API and runner."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LocalRunnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parallel_tasks_per_job: int | None = Field(default=None, gt=0, le=4096)
    # Private writable memory a unit may use (RLIMIT_DATA); beyond it an allocation fails.
    # Below 32 MB not even a bare Python interpreter starts.
    memory_limit_per_unit_mb: int | None = Field(default=None, ge=32, le=16 * 1024 * 1024)
