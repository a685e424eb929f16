"""explain(): the plain sentence for each way a SLURM job can end without a unit's result."""

from __future__ import annotations

from fractal_like.runner.slurm.commands import JobInfo
from fractal_like.runner.slurm.diagnose import JobLimits, explain

NO_LIMITS = JobLimits(mem_mb=None, time_minutes=None)


def test_a_node_failure_names_the_node() -> None:
    info = JobInfo(state="NODE_FAIL", exit_code="0:0", node="node17", source="sacct")
    assert explain("42", info, "", NO_LIMITS) == (
        "was lost: the node node17 failed while SLURM job 42 ran (state NODE_FAIL); "
        "resubmit the job, and tell an admin if it happens again"
    )


def test_a_node_failure_without_a_known_node() -> None:
    info = JobInfo(state="NODE_FAIL", node="(null)", source="scontrol")
    assert explain("42", info, "", NO_LIMITS).startswith(
        "was lost: its node failed while SLURM job 42 ran"
    )


def test_a_preemption_names_the_partition_and_what_to_do() -> None:
    info = JobInfo(state="PREEMPTED", partition="low", source="scontrol")
    # slurmstepd's line in the error file is no cancellation by anyone.
    tail = (
        "slurmstepd: error: *** JOB 42 ON vm CANCELLED AT 2025-01-01T10:00:00 DUE TO PREEMPTION ***"
    )
    assert explain("42", info, tail, NO_LIMITS) == (
        "was stopped: SLURM preempted job 42 in partition low to run a job of higher "
        "priority (state PREEMPTED); resubmit, or use a partition whose jobs are not preempted"
    )


def test_a_preemption_without_a_partition_or_state() -> None:
    tail = "*** JOB 42 ON vm CANCELLED AT 2025-01-01T10:00:00 DUE TO PREEMPTION ***"
    assert explain("42", None, tail, NO_LIMITS).startswith(
        "was stopped: SLURM preempted job 42 to run a job of higher priority"
    )
    info = JobInfo(state="PREEMPTED", partition="", source="sacct")
    assert "preempted job 42 to run" in explain("42", info, "", NO_LIMITS)


def test_a_node_failure_known_from_the_error_file_only() -> None:
    tail = (
        "*** JOB 42 ON vm CANCELLED AT 2025-01-01T10:00:00 DUE TO NODE FAILURE, "
        "SEE SLURMCTLD LOG FOR DETAILS ***"
    )
    assert explain("42", None, tail, NO_LIMITS).startswith("was lost: its node failed")


def test_a_cancellation_is_still_a_cancellation() -> None:
    info = JobInfo(state="CANCELLED", source="scontrol")
    tail = "*** JOB 42 ON vm CANCELLED AT 2025-01-01T10:00:00 ***"
    assert explain("42", info, tail, NO_LIMITS).startswith("was cancelled outside fractal-like")


def test_a_failed_worker_init_line_is_quoted() -> None:
    info = JobInfo(state="FAILED", exit_code="1:0", source="scontrol")
    tail = "sh: 3: module: not found\nfractal-like: worker_init line 3 failed: module load gcc\n"
    assert explain("42", info, tail, NO_LIMITS) == (
        "never started: worker_init line 3 failed: module load gcc (SLURM job 42), before "
        "the worker; correct worker_init and submit again"
    )
