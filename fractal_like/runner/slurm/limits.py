"""Association limits a job's SLURM jobs would surely break, in words. Pure functions.

Only what is certain before the job runs is judged: every SLURM job of a task asks at
least one unit's time, CPUs and memory (batching only adds to them), and a parallel first
task runs one unit per image the dataset has now. A limit SLURM would hold a job for
forever (MaxWall, a per-job or group TRES smaller than one job) or refuse at sbatch
(MaxSubmitJobs) is worth a sentence at submit instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .associations import Association
from .batching import BatchingError, parse_time_minutes

# TRES memory as sacctmgr prints it: a number of MiB, or with SLURM's binary suffixes.
_MEMORY = re.compile(r"^(\d+)([KMGTP]?)$")
_FACTOR_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}


@dataclass(frozen=True)
class TaskDemand:
    """What the smallest SLURM job of one task asks, and how many it submits if known."""

    task: str  # e.g. "task 2 'illumination correction'"
    partition: str
    cpus: int
    mem_mb: int | None
    time_minutes: int | None
    num_jobs: int | None = None  # None: not known before the job runs


def association_for(
    associations: list[Association], account: str, partition: str
) -> Association | None:
    """The association SLURM applies: the account's on this partition, else its general one."""
    mine = [item for item in associations if item.account == account]
    for association in mine:
        if association.partition == partition:
            return association
    return next((item for item in mine if not item.partition), None)


def breaches(association: Association, demand: TaskDemand, who: str) -> list[str]:
    """One sentence per limit of `association` the task's jobs would break; `who` names
    the account and cluster user, e.g. "account 'lab-a' of cluster user 'alice'"."""
    found: list[str] = []
    wall = _minutes(association.max_wall)
    if wall is not None and demand.time_minutes is not None and demand.time_minutes > wall:
        found.append(
            f"{demand.task} asks for {demand.time_minutes} min per SLURM job, over the "
            f"MaxWall of {wall} min that SLURM sets for {who}: ask for less time (the "
            "task's meta `time`) or ask the cluster admin for more"
        )
    for label, tres in (("MaxTRES", association.max_tres), ("GrpTRES", association.grp_tres)):
        limits = _tres(tres)
        cpus = limits.get("cpu")
        if cpus is not None and demand.cpus > cpus:
            found.append(
                f"{demand.task} asks for {demand.cpus} CPUs per SLURM job, over the {label} "
                f"cpu={cpus} that SLURM sets for {who}: SLURM would never start it"
            )
        mem = limits.get("mem_mb")
        if mem is not None and demand.mem_mb is not None and demand.mem_mb > mem:
            found.append(
                f"{demand.task} asks for {demand.mem_mb} MB per SLURM job, over the {label} "
                f"mem={mem} MB that SLURM sets for {who}: SLURM would never start it"
            )
    limit = association.max_submit_jobs
    if limit is not None and demand.num_jobs is not None and demand.num_jobs > limit:
        found.append(
            f"{demand.task} would submit {demand.num_jobs} SLURM jobs at once, over the "
            f"MaxSubmitJobs={limit} that SLURM sets for {who}: SLURM would refuse the rest "
            "(raise the task's meta `tasks_per_job`, or filter fewer images)"
        )
    return found


def _minutes(text: str) -> int | None:
    if not text:
        return None
    try:
        return parse_time_minutes(text)
    except BatchingError:
        return None  # a form we do not read ("UNLIMITED"): no limit we can judge


def _tres(text: str) -> dict[str, int]:
    """`cpu=4,mem=2G,node=1` as numbers (memory in MiB under "mem_mb")."""
    values: dict[str, int] = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        match = _MEMORY.match(value.strip())
        if not match:
            continue
        number, suffix = int(match.group(1)), match.group(2)
        if name.strip() == "mem":
            values["mem_mb"] = int(number * _FACTOR_MB[suffix])
        elif not suffix:
            values[name.strip()] = number
    return values
