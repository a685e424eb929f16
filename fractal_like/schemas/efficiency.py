"""Job efficiency from SLURM's accounting (ours; no Fractal server reports it)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict

from ._base import UTCTimestamp


class UsageFigures(BaseModel):
    """seff's figures over a set of SLURM jobs (None where nothing was measured)."""

    slurm_jobs: int
    units: int
    elapsed_seconds: int
    cpu_hours: float
    allocated_cpu_hours: float
    cpu_efficiency: float | None  # CPU time used / CPU time allocated
    memory_per_unit_median_bytes: int | None
    memory_per_unit_max_bytes: int | None
    memory_efficiency: float | None  # median of MaxRSS / requested memory
    time_used_of_limit: float | None  # the largest elapsed / time limit


class SlurmJobUsageRead(BaseModel):
    slurm_job_id: str
    workflowtask_id: int | None
    task_id: int | None
    state: str
    account: str | None
    partition: str | None
    num_units: int
    parallel_units: int
    elapsed_seconds: int
    cpu_seconds: float
    alloc_cpus: int
    max_rss_bytes: int | None
    req_mem_bytes: int | None
    time_limit_seconds: int | None
    cpu_efficiency: float | None
    memory_efficiency: float | None
    time_used_of_limit: float | None
    timestamp_ended: UTCTimestamp


class WorkflowTaskUsage(UsageFigures):
    workflowtask_id: int | None
    task_id: int | None


class JobEfficiencyRead(BaseModel):
    job_id: int
    # SLURM jobs that ended but whose usage sacct has not given yet.
    slurm_jobs_pending: int
    summary: UsageFigures
    workflow_tasks: list[WorkflowTaskUsage]
    slurm_jobs: list[SlurmJobUsageRead]


class WorkflowTaskEfficiencyRead(UsageFigures):
    workflowtask_id: int


class SlurmSuggestionRead(BaseModel):
    """Per-unit requests for a task, from the user's past runs of it (p95 plus a margin)."""

    task_id: int
    runs: int  # SLURM jobs measured
    mem: str | None  # e.g. "1200M", as Fractal's SLURM config writes it
    cpus_per_task: int | None
    time: str | None  # HH:MM:SS per unit
    based_on: str  # one sentence: what the numbers come from


class UsageQuery(BaseModel):
    """Admin usage report bounds; `group_by` is user or account."""

    model_config = ConfigDict(extra="forbid")

    timestamp_min: AwareDatetime | None = None
    timestamp_max: AwareDatetime | None = None


class UsageTotalRead(BaseModel):
    key: str  # the user's e-mail, or the SLURM account ("" when none was charged)
    user_id: int | None
    slurm_jobs: int
    units: int
    cpu_hours: float
    allocated_cpu_hours: float
