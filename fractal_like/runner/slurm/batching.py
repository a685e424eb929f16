"""How a task's units are grouped into SLURM jobs, and what each job asks for. Pure functions.

Rules (ours):

- A unit needs `cpus_per_task` CPUs, `mem` MB and `time` minutes. A unit that alone needs
  more than `max_cpus_per_job` or `max_mem_per_job` cannot run anywhere: BatchingError.
- parallel_per_job (units running at once inside a job) = how many units fit in
  `target_cpus_per_job` and `target_mem_per_job` (at least 1), never more than fit in the
  caps (`max_cpus_per_job`, `max_mem_per_job`), never more than units_per_job.
- units_per_job = ceil(n / target_num_jobs), but at least parallel_per_job (a job that
  cannot fill its own parallel slots is waste), raised until ceil(n / units_per_job) <=
  max_num_jobs, and never more than n.
- A task's meta may set `tasks_per_job` and `parallel_tasks_per_job` explicitly; they win
  over the targets but stay bounded by the caps (CPU and memory caps for the parallelism,
  max_num_jobs for the units per job).
- Job resources: cpus = parallel_per_job x cpus_per_task, mem = parallel_per_job x mem,
  time = per-unit time x number of waves, ceil(units_per_job / parallel_per_job); nothing
  is added for the worker's own start-up.
- Memory unset everywhere: memory does not limit parallelism and the job asks for none
  (SLURM's default applies). Time unset: the job asks for none either.

`effective_section` merges what one task gets: `default_slurm_config`, then
`gpu_slurm_config` when the task's meta says `needs_gpu`, then the meta keys a user may set
(cpus_per_task, mem, time, needs_gpu, tasks_per_job, parallel_tasks_per_job; other keys are
ignored; nothing else, a partition least of all, can be chosen by a user).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ...slurm_config import BatchingConfig, SlurmConfig, SlurmSection, memory_in_mb

T = TypeVar("T")
MINUTES_PER_DAY = 24 * 60
# days-hours[:minutes[:seconds]] or minutes[:seconds] or hours:minutes:seconds
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
# Fields the GPU section may override one by one (extra_lines are added, not replaced).
_SECTION_FIELDS = (
    "partition",
    "constraint",
    "gres",
    "gpus",
    "account",
    "exclude",
    "nodelist",
    "nodes",
    "shebang_line",
    "use_mem_per_cpu",
)


class BatchingError(ValueError):
    """A task's request cannot be met on this resource; the message says why, plainly."""


@dataclass(frozen=True)
class UnitRequest:
    """What one unit needs, and the task's explicit batching wishes, if any."""

    cpus_per_task: int = 1
    mem_mb: int | None = None
    time_minutes: int | None = None
    tasks_per_job: int | None = None
    parallel_tasks_per_job: int | None = None


@dataclass(frozen=True)
class EffectiveSection(UnitRequest):
    """The SLURM settings one task's jobs get, after defaults, GPU section and meta."""

    partition: str = ""
    constraint: str | None = None
    gres: str | None = None
    gpus: str | None = None
    account: str | None = None
    exclude: str | None = None
    nodelist: str | None = None
    nodes: int | None = None
    extra_lines: tuple[str, ...] = ()
    shebang_line: str = "#!/bin/sh"
    use_mem_per_cpu: bool = False
    needs_gpu: bool = False


@dataclass(frozen=True)
class BatchPlan:
    units_per_job: int
    parallel_per_job: int
    num_jobs: int
    cpus_per_job: int
    mem_per_job_mb: int | None
    time_per_job_minutes: int | None


# ---------------------------------------------------------------------------- time strings


def parse_time_minutes(value: str | int) -> int:
    """A SLURM time limit in whole minutes, seconds rounded up.

    Accepts the forms sbatch accepts: "60" (minutes), "MM:SS", "HH:MM:SS", "D-HH",
    "D-HH:MM", "D-HH:MM:SS"; an int is minutes already.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BatchingError(f"{value!r} is not a SLURM time such as '60' or '1:00:00'")
    minutes = value if isinstance(value, int) else _parse_time_text(value.strip())
    if minutes <= 0:
        raise BatchingError(f"time {value!r} must be longer than zero")
    return minutes


def _parse_time_text(text: str) -> int:
    match = _TIME.match(text)
    if not match:
        raise BatchingError(f"{text!r} is not a SLURM time such as '60', '1:00:00' or '1-00:00'")
    days, first, second, third = match.groups()
    if days is not None:
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
        limits = [(hours, 24), (minutes, 60), (seconds, 60)]
    elif third is not None:
        hours, minutes, seconds = int(first), int(second), int(third)
        limits = [(minutes, 60), (seconds, 60)]
    else:  # "M" or "M:SS": the leading number is minutes and may be any size
        hours, minutes, seconds = 0, int(first), int(second or 0)
        limits = [(seconds, 60)] if second is not None else []
    if any(number >= limit for number, limit in limits):
        raise BatchingError(f"{text!r} has a field out of range (hours < 24, minutes < 60)")
    return int(days or 0) * MINUTES_PER_DAY + hours * 60 + minutes + math.ceil(seconds / 60)


def format_time_minutes(minutes: int) -> str:
    """Minutes as an sbatch time: "HH:MM:00", or "D-HH:MM:00" from one day on."""
    if minutes <= 0:
        raise ValueError("a time limit must be at least one minute")
    days, rest = divmod(minutes, MINUTES_PER_DAY)
    hours, mins = divmod(rest, 60)
    clock = f"{hours:02d}:{mins:02d}:00"
    return f"{days}-{clock}" if days else clock


# ---------------------------------------------------------------------------- the section


def _positive_int(meta: Mapping[str, Any], key: str) -> int | None:
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BatchingError(f"task meta {key} must be a positive integer, got {value!r}")
    return value


def _meta_memory(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BatchingError(f"task meta mem must be MB or a size such as '4G', got {value!r}")
    try:
        return memory_in_mb(value)
    except ValueError as error:
        raise BatchingError(f"task meta mem: {error}") from None


def _meta_time(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_time_minutes(value)
    except BatchingError as error:
        raise BatchingError(f"task meta time: {error}") from None


def _merged_fields(config: SlurmConfig, needs_gpu: bool) -> dict[str, Any]:
    """Admin settings only: the default section, overlaid by the GPU one when asked for."""
    default = config.default_slurm_config
    fields: dict[str, Any] = {name: getattr(default, name) for name in _SECTION_FIELDS}
    fields["cpus_per_task"] = default.cpus_per_task
    fields["mem"] = default.mem
    fields["time"] = default.time
    fields["extra_lines"] = list(default.extra_lines)
    if needs_gpu:
        gpu: SlurmSection | None = config.gpu_slurm_config
        if gpu is None:
            raise BatchingError("the task needs a GPU, but this resource has no GPU configuration")
        # Only what the GPU section sets explicitly overrides: its defaults do not.
        for name in gpu.model_fields_set - {"extra_lines"}:
            fields[name] = getattr(gpu, name)
        fields["extra_lines"] += [
            line for line in gpu.extra_lines if line not in fields["extra_lines"]
        ]
    return fields


def effective_section(config: SlurmConfig, meta: Mapping[str, Any] | None) -> EffectiveSection:
    """What a task's SLURM jobs get; meta values are validated, unknown meta keys ignored."""
    meta = meta or {}
    if not isinstance(meta, Mapping):
        raise BatchingError("task meta must be an object")
    needs_gpu = meta.get("needs_gpu", False)
    if not isinstance(needs_gpu, bool):
        raise BatchingError(f"task meta needs_gpu must be true or false, got {needs_gpu!r}")
    fields = _merged_fields(config, needs_gpu)
    admin_cpus = fields.pop("cpus_per_task")
    cpus = _positive_int(meta, "cpus_per_task") or admin_cpus or 1
    mem = _meta_memory(meta.get("mem"))
    admin_mem, admin_time = fields.pop("mem"), fields.pop("time")
    if mem is None and admin_mem is not None:
        # With use_mem_per_cpu the admin's figure is per CPU; a unit needs it per CPU it has.
        mem = memory_in_mb(admin_mem) * (cpus if fields["use_mem_per_cpu"] else 1)
    time = _meta_time(meta.get("time"))
    if time is None and admin_time is not None:
        time = parse_time_minutes(admin_time)
    return EffectiveSection(
        cpus_per_task=cpus,
        mem_mb=mem,
        time_minutes=time,
        tasks_per_job=_positive_int(meta, "tasks_per_job"),
        parallel_tasks_per_job=_positive_int(meta, "parallel_tasks_per_job"),
        needs_gpu=needs_gpu,
        **{**fields, "extra_lines": tuple(fields["extra_lines"])},
    )


# ---------------------------------------------------------------------------- the plan


def _fits(budget_cpus: int, budget_mem: int, request: UnitRequest) -> int:
    """How many units fit in a CPU and memory budget (memory unset does not limit)."""
    by_cpu = budget_cpus // request.cpus_per_task
    by_mem = budget_mem // request.mem_mb if request.mem_mb else by_cpu
    return min(by_cpu, by_mem)


def _check_unit_fits(request: UnitRequest, max_cpus: int, max_mem: int) -> None:
    if request.cpus_per_task > max_cpus:
        raise BatchingError(
            f"task asks for {request.cpus_per_task} CPUs per unit; "
            f"this resource allows at most {max_cpus} per SLURM job"
        )
    if request.mem_mb is not None and request.mem_mb > max_mem:
        raise BatchingError(
            f"task asks for {request.mem_mb} MB of memory per unit; "
            f"this resource allows at most {max_mem} MB per SLURM job"
        )


def plan_batches(n: int, request: UnitRequest, config: BatchingConfig) -> BatchPlan:
    """How `n` units with this request are spread over SLURM jobs (rules in the docstring)."""
    if n < 1:
        raise ValueError("there are no units to plan")
    max_mem = memory_in_mb(config.max_mem_per_job)
    _check_unit_fits(request, config.max_cpus_per_job, max_mem)
    most_parallel = _fits(config.max_cpus_per_job, max_mem, request)  # >= 1: the unit fits
    if request.parallel_tasks_per_job is not None:
        parallel = request.parallel_tasks_per_job
    else:
        target_mem = memory_in_mb(config.target_mem_per_job)
        parallel = max(1, _fits(config.target_cpus_per_job, target_mem, request))
    parallel = min(parallel, most_parallel)
    if request.tasks_per_job is not None:
        units_per_job = request.tasks_per_job
    else:
        units_per_job = max(math.ceil(n / config.target_num_jobs), parallel)
    units_per_job = min(max(units_per_job, math.ceil(n / config.max_num_jobs)), n)
    parallel = min(parallel, units_per_job)
    waves = math.ceil(units_per_job / parallel)
    return BatchPlan(
        units_per_job=units_per_job,
        parallel_per_job=parallel,
        num_jobs=math.ceil(n / units_per_job),
        cpus_per_job=parallel * request.cpus_per_task,
        mem_per_job_mb=parallel * request.mem_mb if request.mem_mb is not None else None,
        time_per_job_minutes=(
            request.time_minutes * waves if request.time_minutes is not None else None
        ),
    )


def split_into_batches(items: Sequence[T], units_per_job: int) -> list[list[T]]:
    """Consecutive slices of `units_per_job` items (the last may be shorter), order kept."""
    if units_per_job < 1:
        raise ValueError("units_per_job must be at least 1")
    return [
        list(items[start : start + units_per_job]) for start in range(0, len(items), units_per_job)
    ]
