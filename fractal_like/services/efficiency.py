"""Job efficiency from the slurmusage records: seff's figures per job, per workflow task,
per task (a suggestion of requests for the next run) and per user or account (admins).

Requests and usage in a record are the SLURM job's, for the units it ran at once
(`parallel_units`); per-unit figures divide by that.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import SlurmJob, SlurmUsage, UserOAuth
from ..schemas.efficiency import (
    JobEfficiencyRead,
    SlurmJobUsageRead,
    SlurmSuggestionRead,
    UsageFigures,
    UsageTotalRead,
    WorkflowTaskEfficiencyRead,
    WorkflowTaskUsage,
)

SUGGESTION_RUNS = 200  # the latest SLURM jobs of a task a suggestion reads
MEMORY_MARGIN = 1.2
TIME_MARGIN = 1.5
MIN_TIME_SECONDS = 60
MIB = 1 << 20


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)


def figures(rows: Sequence[SlurmUsage]) -> UsageFigures:
    cpu = sum(row.cpu_seconds for row in rows)
    allocated = sum(row.elapsed_seconds * row.alloc_cpus for row in rows)
    per_unit = [row.max_rss_bytes // row.parallel_units for row in rows if row.max_rss_bytes]
    memory = [
        ratio for row in rows if (ratio := _ratio(row.max_rss_bytes, row.req_mem_bytes)) is not None
    ]
    time_used = [
        ratio
        for row in rows
        if (ratio := _ratio(row.elapsed_seconds, row.time_limit_seconds)) is not None
    ]
    return UsageFigures(
        slurm_jobs=len(rows),
        units=sum(row.num_units for row in rows),
        elapsed_seconds=sum(row.elapsed_seconds for row in rows),
        cpu_hours=round(cpu / 3600, 6),
        allocated_cpu_hours=round(allocated / 3600, 6),
        cpu_efficiency=_ratio(cpu, allocated),
        memory_per_unit_median_bytes=int(statistics.median(per_unit)) if per_unit else None,
        memory_per_unit_max_bytes=max(per_unit) if per_unit else None,
        memory_efficiency=round(statistics.median(memory), 4) if memory else None,
        time_used_of_limit=max(time_used) if time_used else None,
    )


def _job_read(row: SlurmUsage) -> SlurmJobUsageRead:
    return SlurmJobUsageRead(
        **row.model_dump(exclude={"id", "user_id", "job_id", "slurmjob_id", "timestamp_recorded"}),
        cpu_efficiency=_ratio(row.cpu_seconds, row.elapsed_seconds * row.alloc_cpus),
        memory_efficiency=_ratio(row.max_rss_bytes, row.req_mem_bytes),
        time_used_of_limit=_ratio(row.elapsed_seconds, row.time_limit_seconds),
    )


async def job_efficiency(session: AsyncSession, job_id: int) -> JobEfficiencyRead:
    rows = list(
        (
            await session.exec(
                select(SlurmUsage)
                .where(SlurmUsage.job_id == job_id)
                .order_by(col(SlurmUsage.slurmjob_id))
            )
        ).all()
    )
    measured = select(SlurmUsage.slurmjob_id).where(SlurmUsage.job_id == job_id)
    pending = (
        await session.exec(
            select(func.count())
            .select_from(SlurmJob)
            .where(
                SlurmJob.job_id == job_id,
                col(SlurmJob.slurm_job_id).is_not(None),
                col(SlurmJob.id).not_in(measured),
            )
        )
    ).one()
    by_task: dict[int | None, list[SlurmUsage]] = {}
    for row in rows:
        by_task.setdefault(row.workflowtask_id, []).append(row)
    return JobEfficiencyRead(
        job_id=job_id,
        slurm_jobs_pending=pending,
        summary=figures(rows),
        workflow_tasks=[
            WorkflowTaskUsage(
                workflowtask_id=wftask_id,
                task_id=task_rows[0].task_id,
                **figures(task_rows).model_dump(),
            )
            for wftask_id, task_rows in by_task.items()
        ],
        slurm_jobs=[_job_read(row) for row in rows],
    )


async def workflow_task_efficiency(
    session: AsyncSession, workflowtask_id: int
) -> WorkflowTaskEfficiencyRead:
    """Every measured run of one workflow task, across its jobs."""
    rows = (
        await session.exec(select(SlurmUsage).where(SlurmUsage.workflowtask_id == workflowtask_id))
    ).all()
    return WorkflowTaskEfficiencyRead(
        workflowtask_id=workflowtask_id, **figures(list(rows)).model_dump()
    )


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _clock(seconds: float) -> str:
    whole = math.ceil(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


async def slurm_suggestion(
    session: AsyncSession, task_id: int, user_id: int
) -> SlurmSuggestionRead:
    """Per-unit mem, cpus_per_task and time for a task, from this user's own past runs."""
    rows = (
        await session.exec(
            select(SlurmUsage)
            .where(SlurmUsage.task_id == task_id, SlurmUsage.user_id == user_id)
            .order_by(col(SlurmUsage.timestamp_ended).desc())
            .limit(SUGGESTION_RUNS)
        )
    ).all()
    done = [row for row in rows if row.state == "COMPLETED" and row.elapsed_seconds > 0]
    if not rows:
        return SlurmSuggestionRead(
            task_id=task_id,
            runs=0,
            mem=None,
            cpus_per_task=None,
            time=None,
            based_on="no run of this task on SLURM has been measured yet",
        )
    memory = [row.max_rss_bytes / row.parallel_units for row in done if row.max_rss_bytes]
    # A batch killed for memory needed more than it asked: at least twice its request.
    memory += [
        2 * row.req_mem_bytes / row.parallel_units
        for row in rows
        if row.state == "OUT_OF_MEMORY" and row.req_mem_bytes
    ]
    cores = [row.cpu_seconds / row.elapsed_seconds / row.parallel_units for row in done]
    # A batch runs its units in waves of parallel_units: a unit took about elapsed / waves.
    unit_seconds = [
        row.elapsed_seconds / math.ceil(row.num_units / row.parallel_units)
        for row in done
        if row.num_units
    ]
    return SlurmSuggestionRead(
        task_id=task_id,
        runs=len(rows),
        mem=f"{math.ceil(_p95(memory) * MEMORY_MARGIN / MIB)}M" if memory else None,
        cpus_per_task=max(1, math.ceil(_p95(cores) - 0.05)) if cores else None,
        time=(
            _clock(max(MIN_TIME_SECONDS, _p95(unit_seconds) * TIME_MARGIN))
            if unit_seconds
            else None
        ),
        based_on=(
            f"{len(rows)} SLURM jobs of yours ({len(done)} completed): p95 of MaxRSS per unit "
            f"plus {round((MEMORY_MARGIN - 1) * 100)}%, p95 of cores used per unit, p95 of "
            f"time per unit times {TIME_MARGIN}"
        ),
    )


async def usage_totals(
    session: AsyncSession,
    group_by: str,
    since: datetime | None,
    until: datetime | None,
) -> list[UsageTotalRead]:
    """CPU-hours per user (e-mail) or per SLURM account, of jobs that ended in the period."""
    key = col(UserOAuth.email) if group_by == "user" else func.coalesce(SlurmUsage.account, "")
    user = col(SlurmUsage.user_id) if group_by == "user" else None
    columns: list[Any] = [
        key.label("key"),
        func.count().label("slurm_jobs"),
        func.sum(SlurmUsage.num_units).label("units"),
        func.sum(SlurmUsage.cpu_seconds).label("cpu"),
        func.sum(col(SlurmUsage.elapsed_seconds) * col(SlurmUsage.alloc_cpus)).label("allocated"),
    ]
    # Core's select: sqlmodel's is typed for at most four columns.
    statement = core_select(*columns, *([user] if user is not None else []))
    if group_by == "user":
        statement = statement.join(UserOAuth, col(UserOAuth.id) == SlurmUsage.user_id)
    if since is not None:
        statement = statement.where(col(SlurmUsage.timestamp_ended) >= since)
    if until is not None:
        statement = statement.where(col(SlurmUsage.timestamp_ended) <= until)
    grouping = [key, *([user] if user is not None else [])]
    statement = statement.group_by(*grouping).order_by(key)
    return [
        UsageTotalRead(
            key=row.key,
            user_id=row.user_id if group_by == "user" else None,
            slurm_jobs=row.slurm_jobs,
            units=int(row.units or 0),
            cpu_hours=round(float(row.cpu or 0) / 3600, 6),
            allocated_cpu_hours=round(float(row.allocated or 0) / 3600, 6),
        )
        for row in (await (await session.connection()).execute(statement)).all()
    ]


def usage_csv(totals: list[UsageTotalRead], group_by: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [group_by, "user_id", "slurm_jobs", "units", "cpu_hours", "allocated_cpu_hours"]
    )
    for total in totals:
        writer.writerow(
            [
                total.key,
                "" if total.user_id is None else total.user_id,
                total.slurm_jobs,
                total.units,
                f"{total.cpu_hours:.6f}",
                f"{total.allocated_cpu_hours:.6f}",
            ]
        )
    return out.getvalue()
