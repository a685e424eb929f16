"""Why a SLURM job ended without a result for some of its units, in plain words.

The reason is a predicate the workflow run puts after the unit's name: "unit 12 of task
'segment' was killed by SLURM for using more than 50 MB of memory".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...worker_init import WORKER_INIT_FAILED
from .commands import JobInfo

MEMORY_MARKERS = ("exceeded job memory limit", "exceeded memory limit", "oom-kill", "oom_kill")


@dataclass
class JobLimits:
    """What the SLURM job asked for, to name the limit it hit."""

    mem_mb: int | None
    time_minutes: int | None


def read_tail(path: Path, max_bytes: int = 8000) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _minutes(minutes: int) -> str:
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _known(value: str) -> bool:
    return bool(value) and value not in ("None", "(null)", "Unknown")


def _node_failed(slurm_job_id: str, info: JobInfo | None) -> str:
    # NODE_FAIL: the node stopped answering, or an admin set it down, while the job ran.
    node = f"the node {info.node}" if info and _known(info.node) else "its node"
    return (
        f"was lost: {node} failed while SLURM job {slurm_job_id} ran (state NODE_FAIL); "
        "resubmit the job, and tell an admin if it happens again"
    )


def _preempted(slurm_job_id: str, info: JobInfo | None) -> str:
    partition = f" in partition {info.partition}" if info and _known(info.partition) else ""
    return (
        f"was stopped: SLURM preempted job {slurm_job_id}{partition} to run a job of higher "
        "priority (state PREEMPTED); resubmit, or use a partition whose jobs are not "
        "preempted"
    )


def _worker_init_failure(stderr_tail: str) -> str:
    """What the sbatch script said when a worker_init line failed (worker_init.py)."""
    for line in reversed(stderr_tail.splitlines()):
        if line.startswith(WORKER_INIT_FAILED):
            return line.removeprefix("fractal-like: ").strip()
    return ""


def explain(
    slurm_job_id: str,
    info: JobInfo | None,
    stderr_tail: str,
    limits: JobLimits,
    cancelled_by_us: bool = False,
) -> str:
    """The plain reason for a unit that has no exit code after its SLURM job ended."""
    state = (info.state if info else "").upper()
    lowered = stderr_tail.lower()
    # Before the markers below: slurmstepd writes "CANCELLED AT ... DUE TO PREEMPTION"
    # (or NODE FAILURE) into the job's error file, which is no cancellation by anyone.
    if state == "NODE_FAIL" or (not state and "due to node fail" in lowered):
        return _node_failed(slurm_job_id, info)
    if state == "PREEMPTED" or (not state and "due to preemption" in lowered):
        return _preempted(slurm_job_id, info)
    memory = state == "OUT_OF_MEMORY" or any(marker in lowered for marker in MEMORY_MARKERS)
    if memory:
        limit = f"{limits.mem_mb} MB of memory" if limits.mem_mb else "its memory limit"
        return f"was killed by SLURM for using more than {limit} (SLURM job {slurm_job_id})"

    if state == "TIMEOUT" or "due to time limit" in lowered:
        limit = f" of {_minutes(limits.time_minutes)}" if limits.time_minutes else ""
        return (
            f"was stopped by SLURM when its job reached its time limit{limit} "
            f"(SLURM job {slurm_job_id})"
        )
    if state == "CANCELLED" or "cancelled at" in lowered:
        if cancelled_by_us:
            return f"was stopped (SLURM job {slurm_job_id} cancelled by fractal-like)"
        return (
            f"was cancelled outside fractal-like: SLURM job {slurm_job_id} was cancelled "
            "by an administrator or with scancel"
        )
    if state == "BOOT_FAIL":
        return f"never started: the node of SLURM job {slurm_job_id} failed to boot"
    if state == "DEADLINE":
        return f"never finished: SLURM job {slurm_job_id} reached its deadline"
    init_failed = _worker_init_failure(stderr_tail)
    if init_failed:
        return (
            f"never started: {init_failed} (SLURM job {slurm_job_id}), before the worker; "
            "correct worker_init and submit again"
        )
    if info is None:
        return (
            f"has no result, and SLURM no longer knows job {slurm_job_id} (it left the queue "
            "and there is no accounting to ask)"
        )
    detail = ", ".join(
        part
        for part in (
            f"state {info.state}" if info.state else "",
            f"exit code {info.exit_code}" if info.exit_code else "",
            f"reason {info.reason}" if info.reason and info.reason != "None" else "",
        )
        if part
    )
    last = [line for line in stderr_tail.splitlines() if line.strip()][-3:]
    said = (
        f"; its error output ends with: {' | '.join(line.strip() for line in last)}" if last else ""
    )
    told = f", as {info.source} tells" if info.source else ""
    return (
        f"has no result: SLURM job {slurm_job_id} ended without running it ({detail}{told}){said}"
    )
