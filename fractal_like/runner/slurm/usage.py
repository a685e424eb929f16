"""What ended SLURM jobs used, read from `sacct` (SLURM's accounting database).

`sacct` prints one line for the job's allocation and one per step (`.batch`, `.extern`,
`.0`...). The allocation line has the state, elapsed time, CPUs, requested memory and time
limit; MaxRSS is only on the steps, so the job's MaxRSS is the largest of its steps'. A job
whose steps are not yet in the database (slurmdbd writes them a moment after the job
leaves the queue) is reported only once its end is old enough for them to have arrived.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .cluster_host import CommandRunner, ServerAccount
from .commands import FINAL_STATES, JOB_ID
from .process import SlurmCommandError

FIELDS = (
    "JobID",
    "State",
    "ElapsedRaw",
    "TotalCPU",
    "AllocCPUS",
    "MaxRSS",
    "ReqMem",
    "TimelimitRaw",
    "Account",
    "Partition",
    "End",
)
# How long after a job's end its steps' figures may still be missing from sacct.
STEP_GRACE = timedelta(seconds=120)
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)[nc]?$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


@dataclass(frozen=True)
class JobUsage:
    slurm_job_id: str
    state: str
    elapsed_seconds: int
    cpu_seconds: float
    alloc_cpus: int
    max_rss_bytes: int | None
    req_mem_bytes: int | None
    time_limit_seconds: int | None
    account: str | None
    partition: str | None
    ended: datetime


def sacct_argv(job_ids: list[str]) -> list[str]:
    return [
        "sacct",
        "--allusers",
        "-n",
        "-P",
        f"--format={','.join(FIELDS)}",
        f"--jobs={','.join(job_ids)}",
    ]


async def read_usage(job_ids: list[str], where: CommandRunner | None = None) -> dict[str, JobUsage]:
    """The usage of each of these jobs that sacct reports as ended; the others are missing.
    sacct runs `where` the jobs were submitted (default: this machine, as the server).

    Raises SlurmCommandError when sacct cannot answer (e.g. no accounting storage)."""
    ids = [job_id for job_id in job_ids if JOB_ID.match(job_id)]
    if not ids:
        return {}
    result = await (where or ServerAccount()).run(sacct_argv(ids), idempotent=True)
    if result.returncode != 0:
        words = (result.stderr or result.stdout).strip().splitlines()
        raise SlurmCommandError(f"sacct failed: {words[-1] if words else result.returncode}")
    return parse_usage(result.stdout, datetime.now(UTC))


def parse_usage(text: str, now: datetime) -> dict[str, JobUsage]:
    allocations: dict[str, list[str]] = {}
    step_rss: dict[str, list[int]] = {}  # a step too short to be sampled has no MaxRSS
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < len(FIELDS):
            continue
        job_id, _, step = parts[0].partition(".")
        if step:
            rss = parse_size(parts[5])
            step_rss.setdefault(job_id, []).extend([rss] if rss is not None else [])
        else:
            allocations[job_id] = parts
    usage: dict[str, JobUsage] = {}
    for job_id, parts in allocations.items():
        state = parts[1].split()[0] if parts[1] else ""
        ended = parse_end(parts[10])
        if state not in FINAL_STATES or ended is None:
            continue
        sampled = step_rss.get(job_id)
        alloc_cpus = _int(parts[4]) or 0
        requested = _request_bytes(parts[6], alloc_cpus)
        if (sampled is None or requested is None) and now - ended < STEP_GRACE:
            # Its steps (or, on a busy slurmdbd, its request) are not in the database yet.
            continue
        usage[job_id] = JobUsage(
            slurm_job_id=job_id,
            state=state,
            elapsed_seconds=_int(parts[2]) or 0,
            cpu_seconds=parse_cpu_time(parts[3]),
            alloc_cpus=alloc_cpus,
            max_rss_bytes=max(sampled) if sampled else None,
            req_mem_bytes=requested,
            time_limit_seconds=_minutes_to_seconds(parts[7]),
            account=parts[8] or None,
            partition=parts[9] or None,
            ended=ended,
        )
    return usage


def parse_size(text: str) -> int | None:
    """'1234K' -> bytes (sacct's sizes are powers of 1024); None when empty."""
    match = _SIZE.match(text.strip())
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_cpu_time(text: str) -> float:
    """sacct's [DD-[HH:]]MM:SS[.mmm] -> seconds."""
    text = text.strip()
    if not text:
        return 0.0
    days, _, clock = text.rpartition("-")
    pieces = [float(piece) for piece in clock.split(":")]
    seconds = 0.0
    for piece in pieces:
        seconds = seconds * 60 + piece
    return seconds + (int(days) * 86400 if days else 0)


def parse_end(text: str) -> datetime | None:
    """sacct prints local times without a zone ('2026-12-06T00:10:11'); 'Unknown' if none."""
    try:
        return datetime.fromisoformat(text.strip()).astimezone(UTC)
    except ValueError:
        return None


def _request_bytes(text: str, alloc_cpus: int) -> int | None:
    """ReqMem: '4000M' for the job ('n' per node, one node here) or '1000Mc' per CPU."""
    size = parse_size(text)
    if size is None or size == 0:
        return None
    return size * max(alloc_cpus, 1) if text.strip().endswith("c") else size


def _minutes_to_seconds(text: str) -> int | None:
    minutes = _int(text)
    return minutes * 60 if minutes is not None else None


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
