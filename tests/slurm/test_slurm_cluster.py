"""The local SLURM cluster itself (scripts/slurm-dev-cluster.sh): what the executor relies on.

No mocks: jobs go through sudo to the real cluster, as the `slurm_sudo` runner submits them.
Time limits are not tested here: SLURM enforces them only about a minute late.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from ..support.slurm_support import (
    BOB,
    ensure_unix_user,
    job_fields,
    run_as,
    sacct_c,
    sbatch_as,
    user_owned_dir,
    wait_for_slurm_job,
)

SCRIPT = Path(__file__).parents[2] / "scripts" / "slurm-dev-cluster.sh"
# Generous: a trivial job normally ends within a second, but CI machines can be slow.
TIMEOUT = 60


def _wait_running(job: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while (job_fields(job) or {}).get("JobState") != "RUNNING":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)


def test_job_runs_as_the_submitting_user(
    slurm_user: tuple[str, int, int], slurm_shared_dir: Path
) -> None:
    name, uid, _gid = slurm_user
    work = user_owned_dir(slurm_shared_dir / "work", name)
    job = sbatch_as(
        name, [f"--chdir={work}", f"--output={work}/out.txt"], "#!/bin/sh\nid -u > uid.txt\n"
    )
    assert wait_for_slurm_job(job, TIMEOUT) == ("COMPLETED", "0:0")
    written = work / "uid.txt"
    assert written.read_text().strip() == str(uid)
    assert written.stat().st_uid == uid


def test_exit_code_is_reported(slurm_user: tuple[str, int, int], slurm_shared_dir: Path) -> None:
    name, _uid, _gid = slurm_user
    work = user_owned_dir(slurm_shared_dir / "work", name)
    job = sbatch_as(name, [f"--output={work}/out.txt"], "#!/bin/sh\nexit 3\n")
    assert wait_for_slurm_job(job, TIMEOUT) == ("FAILED", "3:0")


def test_memory_hog_is_killed(slurm_user: tuple[str, int, int], slurm_shared_dir: Path) -> None:
    name, _uid, _gid = slurm_user
    work = user_owned_dir(slurm_shared_dir / "work", name)
    hog = "import time; block = bytearray(300 * 1024 * 1024); time.sleep(20)"
    started = time.monotonic()
    job = sbatch_as(
        name,
        ["--mem=50M", f"--output={work}/out.txt", f"--error={work}/err.txt"],
        f"#!/bin/sh\npython3 -c '{hog}'\n",
    )
    state, exit_code = wait_for_slurm_job(job, TIMEOUT)
    # Killed by the accounting sampler (OverMemoryKill), long before the 20 s sleep ends.
    # SLURM says FAILED with signal 9, not OUT_OF_MEMORY: only stderr names the cause.
    assert (state, exit_code) == ("FAILED", "0:9")
    assert time.monotonic() - started < 15
    assert "memory limit" in (work / "err.txt").read_text()


def test_scancel_cancels_a_running_job(
    slurm_user: tuple[str, int, int], slurm_shared_dir: Path
) -> None:
    name, _uid, _gid = slurm_user
    work = user_owned_dir(slurm_shared_dir / "work", name)
    job = sbatch_as(name, [f"--output={work}/out.txt"], "#!/bin/sh\nsleep 120\n")
    _wait_running(job)
    cancelled = run_as(name, ["scancel", str(job)])
    assert cancelled.returncode == 0, cancelled.stderr
    state, _exit_code = wait_for_slurm_job(job, TIMEOUT)
    assert state == "CANCELLED"
    assert f"JOB {job} ON" in (work / "out.txt").read_text()


def test_unknown_partition_is_refused_at_submission(slurm_user: tuple[str, int, int]) -> None:
    name, _uid, _gid = slurm_user
    result = run_as(
        name, ["sbatch", "--parsable", "--partition=no-such-partition"], stdin="#!/bin/sh\n"
    )
    assert result.returncode != 0
    assert "no-such-partition" in result.stderr
    assert result.stdout == ""


def test_impossible_request_is_refused_at_submission(slurm_user: tuple[str, int, int]) -> None:
    # EnforcePartLimits=ALL: no pending-forever job for more memory than the node has.
    name, _uid, _gid = slurm_user
    result = run_as(name, ["sbatch", "--parsable", "--mem=100T"], stdin="#!/bin/sh\n")
    assert result.returncode != 0
    assert result.stdout == ""


def test_sacct_c_reports_a_finished_job(
    slurm_user: tuple[str, int, int], slurm_shared_dir: Path
) -> None:
    name, _uid, _gid = slurm_user
    work = user_owned_dir(slurm_shared_dir / "work", name)
    job = sbatch_as(name, [f"--output={work}/out.txt"], "#!/bin/sh\nexit 5\n")
    wait_for_slurm_job(job, TIMEOUT)
    # The completion file is written as the job ends; no accounting daemon needed.
    assert sacct_c(job) == ("FAILED", "5:0")


def test_sacct_reports_usage_to_the_submitting_user(
    slurm_accounting: str, slurm_user: tuple[str, int, int], slurm_shared_dir: Path
) -> None:
    # With slurmdbd every user reads their own jobs' accounting, memory peak included.
    name, uid, _gid = slurm_user
    work = user_owned_dir(slurm_shared_dir / "work", name)
    hold_60_mb = "python3 -c 'import time; b = bytearray(60_000_000); time.sleep(2)'"
    job = sbatch_as(name, [f"--output={work}/out.txt"], f"#!/bin/sh\n{hold_60_mb}\n")
    assert wait_for_slurm_job(job, TIMEOUT)[0] == "COMPLETED"
    fields = ["JobID", "State", "ExitCode", "AllocCPUS", "MaxRSS", "UID"]
    deadline = time.monotonic() + TIMEOUT
    while True:
        answer = run_as(name, ["sacct", "-n", "-P", "-j", str(job), "-o", ",".join(fields)])
        assert answer.returncode == 0, answer.stderr
        rows = {
            row["JobID"]: row
            for row in (
                dict(zip(fields, line.split("|"), strict=True))
                for line in answer.stdout.splitlines()
            )
        }
        # slurmdbd's record lags the job: until the job's own start record arrives, the
        # job row is a stand-in (PENDING, uid 0) made from its steps.
        whole, batch = rows.get(str(job)), rows.get(f"{job}.batch")
        if (
            whole and batch and whole["UID"] != "0" and batch["MaxRSS"]
        ) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert whole is not None and batch is not None, answer.stdout
    assert (whole["State"], whole["ExitCode"], whole["UID"]) == ("COMPLETED", "0:0", str(uid))
    assert whole["AllocCPUS"] == "1"
    assert batch["MaxRSS"].endswith("K"), batch
    assert int(batch["MaxRSS"][:-1]) > 50_000, batch  # the 60 MB it held, in KiB


def test_job_cannot_write_where_its_user_may_not(
    slurm_user: tuple[str, int, int], slurm_shared_dir: Path
) -> None:
    # Users are isolated: bob's job cannot put its output into alice's folder.
    name, _uid, _gid = slurm_user
    ensure_unix_user(BOB)
    alices = user_owned_dir(slurm_shared_dir / "alice", name)
    job = sbatch_as(BOB, [f"--output={alices}/out.txt"], "#!/bin/sh\ntrue\n")
    state, _exit_code = wait_for_slurm_job(job, TIMEOUT)
    assert state == "FAILED"
    assert not (alices / "out.txt").exists()


def test_script_status_and_start_leave_a_busy_cluster_alone(
    slurm_conf: str, slurm_user: tuple[str, int, int], slurm_shared_dir: Path
) -> None:
    folder = str(Path(slurm_conf).parent)
    pid_file = Path(folder) / "slurmctld.pid"
    if not pid_file.exists():
        pytest.skip(f"the cluster of {slurm_conf} was not started by {SCRIPT.name}")
    pid_before = pid_file.read_text()
    # A node that is busy (mixed, completing) is up: start must not restart it.
    name, _uid, _gid = slurm_user
    work = user_owned_dir(slurm_shared_dir / "work", name)
    job = sbatch_as(name, [f"--output={work}/out.txt"], "#!/bin/sh\nsleep 1\n")
    _wait_running(job)
    status = subprocess.run(
        ["bash", str(SCRIPT), "status", folder], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", folder], capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout.splitlines()[-1] == f"export SLURM_CONF={slurm_conf}"
    assert pid_file.read_text() == pid_before
    assert wait_for_slurm_job(job, TIMEOUT)[0] == "COMPLETED"


def test_script_status_fails_without_a_cluster(slurm_shared_dir: Path) -> None:
    status = subprocess.run(
        ["bash", str(SCRIPT), "status", str(slurm_shared_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 1
