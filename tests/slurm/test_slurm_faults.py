"""A node that fails and a job that is preempted, on a real cluster of these tests' own.

Both faults disrupt every job of a cluster, so they happen on a second cluster
(tests/support/fault_cluster.py) started with the preemption partitions; the runner, the
API and the helpers are pointed at it with SLURM_CONF for the test's duration. Each ends
the job through the runner's real path (sbatch as the cluster user, the poller, sacct or
scontrol, explain) with its plain sentence, within two poll intervals of the fault.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from fractal_like.config import Settings
from fractal_like.db import sync_url

from ..support.fault_cluster import (
    FaultCluster,
    FaultClusterError,
    purge_fault_cluster,
    start_fault_cluster,
)
from ..support.helpers import ApiClient
from ..support.runner_support import run_until_final
from ..support.slurm_scene import SlurmScene, cleanup, slurm_config, slurm_scene
from ..support.slurm_support import job_fields, sbatch_as, user_owned_dir, wait_for_slurm_job

REQUIRE_SLURM_VAR = "FRACTAL_LIKE_REQUIRE_SLURM"
POLL_SECONDS = 2  # the resource's jobs_poll_interval: the longest wait between two squeues
ONE_DATABASE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
SLEEPING = (
    ("create_images", {"args_non_parallel": {"num_images": 1}}),
    ("sleep", {"args_parallel": {"seconds": 300}}),
)


@pytest.fixture(scope="module")
def fault_cluster(slurm_conf: str, slurm_user: tuple[str, int, int]) -> Iterator[FaultCluster]:
    """A cluster of this worker's own (xdist workers each start theirs), purged after."""
    try:
        cluster = start_fault_cluster()
    except FaultClusterError as error:
        if os.environ.get(REQUIRE_SLURM_VAR) == "1":
            pytest.fail(f"{REQUIRE_SLURM_VAR}=1 but the fault cluster did not start: {error}")
        pytest.skip(f"the fault cluster did not start: {error}")
    yield cluster
    purge_fault_cluster(cluster.folder)


@pytest.fixture
def fault_scene(
    api: ApiClient,
    slurm_user: tuple[str, int, int],
    fault_cluster: FaultCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., SlurmScene]]:
    # Everything in this process that asks SLURM (the resource's checks, the runner's
    # sbatch, squeue and scontrol, the helpers) now asks the fault cluster.
    monkeypatch.setenv("SLURM_CONF", fault_cluster.conf)
    made: list[SlurmScene] = []

    def make(partition: str = "main") -> SlurmScene:
        config = slurm_config()
        config["default_slurm_config"]["partition"] = partition
        scene = slurm_scene(api, slurm_user, config=config, poll_interval=POLL_SECONDS)
        made.append(scene)
        return scene

    yield make
    fault_cluster.resume_node()
    for scene in made:
        cleanup(scene)


def _second_slurm_job(settings: Settings, job_id: int, timeout: float = 60) -> str:
    """The SLURM id of the job's second sbatch (the parallel units), once it runs."""
    engine = create_engine(sync_url(settings.database_url))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                rows = connection.execute(
                    text("SELECT slurm_job_id FROM slurmjob WHERE job_id = :j ORDER BY id"),
                    {"j": job_id},
                ).all()
            if len(rows) >= 2 and rows[1][0]:
                fields = job_fields(rows[1][0])
                if fields and fields.get("JobState") == "RUNNING":
                    return str(rows[1][0])
            time.sleep(0.2)
    finally:
        engine.dispose()
    raise AssertionError(f"the second SLURM job of job {job_id} did not start in {timeout} s")


def _run_in_background(settings: Settings, job_id: int) -> tuple[threading.Thread, dict[str, Any]]:
    """The runner in a thread; `result` gets the final status and when it was reached."""
    result: dict[str, Any] = {}

    def go() -> None:
        result["status"] = run_until_final(settings, [job_id], timeout=180)[job_id]
        result["ended"] = time.monotonic()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, result


def _ended_within_two_polls(thread: threading.Thread, result: dict[str, Any], fault: float) -> None:
    thread.join(200)
    assert result.get("status") == "failed", result
    took = result["ended"] - fault
    assert took <= 2 * POLL_SECONDS, f"the job ended {took:.1f} s after the fault"


@ONE_DATABASE
def test_a_node_that_fails_ends_the_job_in_plain_words(
    fault_scene: Callable[..., SlurmScene], fault_cluster: FaultCluster, settings: Settings
) -> None:
    scene = fault_scene()
    job_id = scene.submit_steps(*SLEEPING)
    thread, result = _run_in_background(settings, job_id)
    slurm_id = _second_slurm_job(settings, job_id)

    fault = time.monotonic()
    fault_cluster.set_node_down("fractal-like fault test")

    _ended_within_two_polls(thread, result, fault)
    message = scene.job(job_id)["executor_error_log"]
    assert message.startswith("task 1 'sleep': unit 0 (")
    assert (
        f"was lost: the node {fault_cluster.node} failed while SLURM job {slurm_id} ran "
        "(state NODE_FAIL)" in message
    )
    # Submitted with --no-requeue: SLURM ended it rather than queue it again.
    assert (job_fields(slurm_id) or {}).get("JobState") == "NODE_FAIL"


@ONE_DATABASE
def test_a_preempted_job_ends_in_plain_words(
    fault_scene: Callable[..., SlurmScene],
    fault_cluster: FaultCluster,
    settings: Settings,
    slurm_user: tuple[str, int, int],
) -> None:
    scene = fault_scene(partition="low")
    job_id = scene.submit_steps(*SLEEPING)
    thread, result = _run_in_background(settings, job_id)
    slurm_id = _second_slurm_job(settings, job_id)

    # A job of the higher-priority partition that needs the whole node.
    work = user_owned_dir(scene.root / "high", slurm_user[0])
    fault = time.monotonic()
    high = sbatch_as(
        slurm_user[0],
        ["--partition=high", "--exclusive", "--mem=100M", f"--output={work}/high.out"],
        "#!/bin/sh\nsleep 1\n",
    )

    _ended_within_two_polls(thread, result, fault)
    message = scene.job(job_id)["executor_error_log"]
    assert message.startswith("task 1 'sleep': unit 0 (")
    assert (
        f"was stopped: SLURM preempted job {slurm_id} in partition low to run a job of "
        "higher priority (state PREEMPTED); resubmit, or use a partition whose jobs are "
        "not preempted" in message
    )
    assert wait_for_slurm_job(high, 60)[0] == "COMPLETED"
