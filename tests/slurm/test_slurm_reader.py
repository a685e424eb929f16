"""How the runner reads a SLURM job that left the queue: accounting first (sacct), then
the controller (scontrol), saying which one answered."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fractal_like.runner.slurm.commands import JobInfo, SlurmReader
from fractal_like.runner.slurm.diagnose import JobLimits, explain

from ..support.slurm_support import run_as, sbatch_as, user_owned_dir, wait_for_slurm_job

TIMEOUT = 60


def _info(job: int) -> JobInfo | None:
    return asyncio.run(SlurmReader().job_info(str(job)))


def test_an_ended_job_is_read_from_accounting(
    slurm_accounting: str, slurm_user: tuple[str, int, int], slurm_shared_dir: Path
) -> None:
    name, _uid, _gid = slurm_user
    work = user_owned_dir(slurm_shared_dir / "reader", name)
    job = sbatch_as(name, [f"--output={work}/out.txt"], "#!/bin/sh\nexit 3\n")
    assert wait_for_slurm_job(job, TIMEOUT)[0] == "FAILED"
    # slurmdbd lags the controller by a moment: until it has the end, scontrol answers.
    deadline = time.monotonic() + TIMEOUT
    info = _info(job)
    while (info is None or info.source != "sacct") and time.monotonic() < deadline:
        time.sleep(0.5)
        info = _info(job)
    assert info is not None
    assert (info.state, info.exit_code, info.source) == ("FAILED", "3:0", "sacct")
    reason = explain(str(job), info, "", JobLimits(mem_mb=None, time_minutes=None))
    assert f"SLURM job {job} ended without running it" in reason
    assert "exit code 3:0, as sacct tells" in reason


def test_a_job_accounting_has_not_ended_is_read_from_scontrol(
    slurm_accounting: str, slurm_user: tuple[str, int, int], slurm_shared_dir: Path
) -> None:
    name, _uid, _gid = slurm_user
    work = user_owned_dir(slurm_shared_dir / "reader-running", name)
    job = sbatch_as(name, [f"--output={work}/out.txt"], "#!/bin/sh\nsleep 60\n")
    try:
        deadline = time.monotonic() + TIMEOUT
        info = _info(job)
        while (info is None or info.state != "RUNNING") and time.monotonic() < deadline:
            time.sleep(0.2)
            info = _info(job)
        # accounting knows the job but not an end: the controller's word is taken
        assert info is not None and (info.state, info.source) == ("RUNNING", "scontrol")
    finally:
        run_as(name, ["scancel", str(job)])
    assert _info(123456789) is None  # a job nobody knows
