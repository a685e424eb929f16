"""A submit refused when its SLURM jobs would surely break a limit of the association they
are charged to (MaxWall, MaxTRES, GrpTRES, MaxSubmitJobs), in a sentence naming the account,
the limit and the value, instead of a job SLURM holds forever or refuses half-way.

What each task's jobs ask is worked out as the runner will (effective_section and
plan_batches of runner/slurm/batching.py); what cannot be known before the job runs (the
units of a task after the first, a compound task's parallel part) is judged by its smallest
job only. A task whose meta the runner would refuse anyway is left to the runner's message.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Resource
from ..runner.slurm.associations import Association
from ..runner.slurm.batching import BatchingError, effective_section, plan_batches
from ..runner.slurm.limits import TaskDemand, association_for, breaches
from ..runner.slurm.requirements import SetupError, slurm_config_of
from ..slurm_config import SlurmConfig
from .errors import InvalidError
from .images import count_images


async def check_job_limits(
    session: AsyncSession,
    resource: Resource,
    cluster_user: str,
    account: str,
    associations: list[Association],
    tasks: list[tuple[Any, Any, Any]],
    dataset_id: int,
    type_filters: dict[str, bool],
    attribute_filters: dict[str, Any],
) -> None:
    """Raise InvalidError listing every limit the tasks' SLURM jobs would break.

    `tasks`: the (workflow task, task, group) rows the job runs, in order."""
    try:
        config = slurm_config_of(resource)
    except SetupError:
        return  # the runner says what is wrong with the resource
    who = f"account {account!r} of cluster user {cluster_user!r}"
    found: list[str] = []
    for index, (wftask, task, _group) in enumerate(tasks):
        units = None
        if index == 0 and task.type == "parallel":
            filters = {**type_filters, **task.input_types, **wftask.type_filters}
            units = await count_images(session, dataset_id, filters, attribute_filters)
        for demand in _demands(config, wftask, task, units):
            association = association_for(associations, account, demand.partition)
            if association is not None:
                found.extend(breaches(association, demand, who))
    if found:
        raise InvalidError("the job was not submitted: " + "; ".join(found) + ".")


def _demands(config: SlurmConfig, wftask: Any, task: Any, units: int | None) -> list[TaskDemand]:
    parts: list[tuple[Any, int | None, str]] = []
    if task.command_non_parallel:
        parts.append((wftask.meta_non_parallel, 1, ""))
    if task.command_parallel:
        # The parallel part of a compound task has as many units as its init says: unknown.
        known = units if task.type == "parallel" else None
        parts.append(
            (wftask.meta_parallel, known, " (its parallel part)" * bool(task.command_non_parallel))
        )
    demands = []
    for meta, count, part in parts:
        try:
            section = effective_section(config, meta)
            plan = plan_batches(count or 1, section, config.batching_config)
        except BatchingError:
            continue  # refused by the runner, with its own words
        demands.append(
            TaskDemand(
                task=f"task {task.name!r}{part}",
                partition=section.partition,
                cpus=plan.cpus_per_job,
                mem_mb=plan.mem_per_job_mb,
                time_minutes=plan.time_per_job_minutes,
                num_jobs=plan.num_jobs if count else None,
            )
        )
    return demands
