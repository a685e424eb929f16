"""Workflows on the real local SLURM cluster, submitted as a non-root test user."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from fractal_like.config import Settings
from fractal_like.db import sync_url

from ..support.helpers import ApiClient, expect
from ..support.runner_support import images, run_until_final
from ..support.slurm_scene import SlurmScene, cleanup, slurm_config, slurm_scene


@pytest.fixture
def scene_factory(api: ApiClient, slurm_conf: str, slurm_user: tuple[str, int, int]):
    made: list[SlurmScene] = []

    def make(**kwargs: Any) -> SlurmScene:
        scene = slurm_scene(api, slurm_user, **kwargs)
        made.append(scene)
        return scene

    yield make
    for scene in made:
        cleanup(scene)


# How SLURM ends a job does not depend on the database: the failure modes run on SQLite
# only (each waits for the cluster, a time limit for over a minute); the workflows of
# every task type, batching and the restart run on both.
ONE_DATABASE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _rows(settings: Settings, sql: str, **params: Any) -> list[tuple]:
    engine = create_engine(sync_url(settings.database_url))
    with engine.connect() as connection:
        rows = list(connection.execute(text(sql), params).all())
    engine.dispose()
    return rows


def _slurm_jobs(settings: Settings, job_id: int) -> list[tuple]:
    return _rows(
        settings,
        "SELECT name, slurm_job_id, status FROM slurmjob WHERE job_id = :j ORDER BY id",
        j=job_id,
    )


@pytest.mark.parametrize("transport", ["slurm_sudo", "slurm_ssh"])
def test_every_task_type_runs_on_slurm_as_the_user(
    scene_factory, settings: Settings, transport: str, request
) -> None:
    ssh = request.getfixturevalue("ssh_server") if transport == "slurm_ssh" else None
    scene = scene_factory(ssh=ssh)
    job_id = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 3}}),
        ("measure_intensity", {}),
        ("illumination_correction", {}),
        ("aggregate", {}),
        ("create_images_compound", {"args_non_parallel": {"num_images": 2}}),
    )
    statuses = run_until_final(settings, [job_id], timeout=150)
    job = scene.job(job_id)
    assert statuses[job_id] == "done", job["log"]
    found = images(scene.user, scene.project["id"], scene.dataset["id"])
    assert len(found) == 3 + 2
    assert sum("compound" in image["zarr_url"] for image in found) == 2
    assert all(
        image["attributes"].get("measured")
        for image in found
        if "compound" not in image["zarr_url"]
    )
    # Every unit ran as the cluster user: its log files belong to that uid.
    units = 1 + 3 + (1 + 3) + 1 + (1 + 2)
    logs = list(Path(job["working_dir_user"]).rglob("*-log.txt"))
    assert len(logs) == units
    assert {log.stat().st_uid for log in logs} == {scene.uid}
    # Each unit knows the SLURM job that ran it, and the runner read its log from there.
    rows = _rows(
        settings,
        "SELECT u.slurm_job_id, u.logfile FROM historyunit u "
        "JOIN historyrun r ON r.id = u.history_run_id WHERE r.job_id = :j",
        j=job_id,
    )
    assert len(rows) == units and all(slurm_id for slurm_id, _ in rows)
    assert all(status == "ended" for _, _, status in _slurm_jobs(settings, job_id))
    if ssh is not None:
        # The runner read the results from its own mirror, filled over SFTP only; the
        # worker and the scripts stayed on the cluster side.
        mirror = Path(job["working_dir"])
        assert len(list(mirror.rglob("*-log.txt"))) == units
        assert len(list(mirror.rglob("*-exitcode"))) == units
        assert {log.stat().st_uid for log in mirror.rglob("*-log.txt")} == {0}
        assert all(logfile.startswith(job["working_dir"]) for _, logfile in rows)
        assert list(Path(job["working_dir_user"]).rglob("fractal_like_node/__main__.py"))
        assert not list(mirror.rglob("*.sh"))
        assert f"Accepted publickey for {ssh.user}" in ssh.log()


def test_200_units_are_batched_into_the_configured_number_of_jobs(
    scene_factory, settings: Settings
) -> None:
    scene = scene_factory(config=slurm_config(target_num_jobs=4))
    job_id = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 200}}),
        ("measure_intensity", {}),
    )
    statuses = run_until_final(settings, [job_id], timeout=240)
    assert statuses[job_id] == "done", scene.job(job_id)["log"]
    jobs = _slurm_jobs(settings, job_id)
    # One sbatch for the converter, four for the 200 parallel units.
    assert len(jobs) == 1 + 4
    parallel_ids = _rows(
        settings,
        "SELECT DISTINCT u.slurm_job_id FROM historyunit u "
        "JOIN historyrun r ON r.id = u.history_run_id WHERE r.job_id = :j AND u.kind = 'parallel'",
        j=job_id,
    )
    assert len(parallel_ids) == 4


def _fail_message(scene: SlurmScene, settings: Settings, job_id: int, timeout: float) -> str:
    statuses = run_until_final(settings, [job_id], timeout=timeout)
    job = scene.job(job_id)
    assert statuses[job_id] == "failed", job["log"]
    assert (
        job["executor_error_log"] in job["log"]
        or job["executor_error_log"].splitlines()[0] in job["log"]
    )
    return job["executor_error_log"]


@ONE_DATABASE
def test_a_unit_over_its_memory_is_reported_in_plain_words(
    scene_factory, settings: Settings
) -> None:
    scene = scene_factory()
    job_id = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 1}}),
        (
            "allocate_memory",
            {
                "args_parallel": {"megabytes": 400, "hold_seconds": 20},
                "meta_parallel": {"mem": "50M"},
            },
        ),
    )
    message = _fail_message(scene, settings, job_id, timeout=120)
    assert "unit 0" in message
    assert "'allocate_memory'" in message
    assert "was killed by SLURM for using more than 50 MB of memory" in message


@ONE_DATABASE
def test_a_unit_over_its_time_limit_is_reported_in_plain_words(
    scene_factory, settings: Settings
) -> None:
    scene = scene_factory()
    job_id = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 1}}),
        ("sleep", {"args_parallel": {"seconds": 600}, "meta_parallel": {"time": "1"}}),
    )
    message = _fail_message(scene, settings, job_id, timeout=240)
    assert "reached its time limit of 1 minute" in message


def _wait_for_slurm_id(settings: Settings, job_id: int, nth: int, timeout: float = 60) -> str:
    """The SLURM id of the job's `nth` sbatch call, once it has one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _slurm_jobs(settings, job_id)
        if len(rows) >= nth and rows[nth - 1][1]:
            return rows[nth - 1][1]
        time.sleep(0.2)
    raise AssertionError(f"no SLURM job number {nth} appeared")


SLEEPING = (
    ("create_images", {"args_non_parallel": {"num_images": 1}}),
    ("sleep", {"args_parallel": {"seconds": 300}}),
)


def _run_in_background(
    settings: Settings, job_id: int, timeout: float
) -> tuple[threading.Thread, dict]:
    result: dict[int, str] = {}

    def go() -> None:
        result.update(run_until_final(settings, [job_id], timeout=timeout))

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, result


@ONE_DATABASE
def test_a_job_cancelled_outside_is_reported_in_plain_words(
    scene_factory, settings: Settings
) -> None:
    scene = scene_factory()
    job_id = scene.submit_steps(*SLEEPING)
    thread, result = _run_in_background(settings, job_id, 120)
    slurm_id = _wait_for_slurm_id(settings, job_id, nth=2)
    subprocess.run(["scancel", slurm_id], check=True)
    thread.join(130)
    assert result[job_id] == "failed"
    message = scene.job(job_id)["executor_error_log"]
    assert f"was cancelled outside fractal-like: SLURM job {slurm_id} was cancelled" in message


@ONE_DATABASE
def test_a_job_sbatch_refuses_fails_with_slurms_words(scene_factory, settings: Settings) -> None:
    # A wrong partition is refused when the resource is saved (test_resource_checks.py);
    # what the checks cannot see (a node feature no node has, a partition removed since)
    # still reaches sbatch, whose refusal ends the job in SLURM's own words.
    config = slurm_config()
    config["default_slurm_config"]["constraint"] = "no-such-feature"
    scene = scene_factory(config=config)
    job_id = scene.submit_steps(("create_images", {"args_non_parallel": {"num_images": 1}}))
    message = _fail_message(scene, settings, job_id, timeout=60)
    assert "was not submitted: SLURM refused it" in message
    assert "invalid feature specification" in message.lower()


@ONE_DATABASE
@pytest.mark.parametrize("transport", ["slurm_sudo", "slurm_ssh"])
def test_stop_cancels_the_slurm_jobs(
    scene_factory, settings: Settings, transport: str, request
) -> None:
    ssh = request.getfixturevalue("ssh_server") if transport == "slurm_ssh" else None
    scene = scene_factory(ssh=ssh)
    job_id = scene.submit_steps(*SLEEPING)
    thread, result = _run_in_background(settings, job_id, 120)
    slurm_id = _wait_for_slurm_id(settings, job_id, nth=2)
    expect(scene.user.get(f"/api/v2/project/{scene.project['id']}/job/{job_id}/stop/"), 202)
    thread.join(130)
    assert result[job_id] == "failed"
    job = scene.job(job_id)
    assert job["executor_error_log"] == "stopped by user"
    state = subprocess.run(
        ["scontrol", "show", "job", slurm_id], capture_output=True, text=True
    ).stdout
    assert "JobState=CANCELLED" in state


@ONE_DATABASE
def test_the_users_slurm_account_reaches_the_job(scene_factory, settings: Settings) -> None:
    scene = scene_factory(slurm_accounts=["lab-a", "lab-b"])
    workflow_job = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 1}}),
    )
    statuses = run_until_final(settings, [workflow_job], timeout=60)
    assert statuses[workflow_job] == "done", scene.job(workflow_job)["log"]
    ((name, slurm_id, _),) = _slurm_jobs(settings, workflow_job)
    job = scene.job(workflow_job)
    scripts = list(Path(job["working_dir"]).rglob(f"{name}.sh"))
    assert "#SBATCH --account=lab-a" in scripts[0].read_text()
    shown = subprocess.run(["scontrol", "show", "job", slurm_id], capture_output=True, text=True)
    assert "Account=lab-a" in shown.stdout


def _start_runner(settings: Settings, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "FRACTAL_LIKE_DB_URL": settings.database_url,
        "FRACTAL_LIKE_DATA_DIR": str(settings.DATA_DIR),
        "FRACTAL_LIKE_JWT_SECRET": settings.JWT_SECRET,
        "FRACTAL_LIKE_RUNNER_POLL_SECONDS": "0.1",
        "FRACTAL_LIKE_RUNNER_STALE_SECONDS": "3",
    }
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "fractal_like.cli", "runner"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.parametrize("transport", ["slurm_sudo", "slurm_ssh"])
def test_a_killed_runner_reattaches_to_its_slurm_jobs_without_submitting_twice(
    scene_factory, settings: Settings, tmp_path: Path, transport: str, request
) -> None:
    # Three SLURM jobs of two units each, one after the other inside each job.
    config = slurm_config(target_num_jobs=3, target_cpus_per_job=1, max_cpus_per_job=1)
    # Over SSH, what ended while no runner ran is fetched by the next one.
    ssh = request.getfixturevalue("ssh_server") if transport == "slurm_ssh" else None
    scene = scene_factory(config=config, ssh=ssh)
    job_id = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 6}}),
        ("measure_intensity", {"args_parallel": {"sleep": 3}}),
    )
    zarr_dir = Path(scene.dataset["zarr_dir"])
    runner = _start_runner(settings, tmp_path / "runner.log")
    try:
        deadline = time.monotonic() + 90
        while not list(zarr_dir.rglob("runs.log")):
            assert time.monotonic() < deadline, (tmp_path / "runner.log").read_text()
            assert scene.job(job_id)["status"] in ("submitted", "running"), scene.job(job_id)
            time.sleep(0.1)
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        assert len(_slurm_jobs(settings, job_id)) == 1 + 3
        assert len(list(zarr_dir.rglob("measurement.json"))) < 6, "ended before the kill"
    finally:
        if runner.poll() is None:
            runner.kill()
    again = _start_runner(settings, tmp_path / "runner.log")
    try:
        deadline = time.monotonic() + 120
        while scene.job(job_id)["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, (tmp_path / "runner.log").read_text()
            time.sleep(0.2)
    finally:
        again.terminate()
        again.wait(30)
    job = scene.job(job_id)
    assert job["status"] == "done", job["log"]
    assert "Resuming job" in job["log"]
    assert len(_slurm_jobs(settings, job_id)) == 1 + 3  # no sbatch after the restart
    runs = sorted(zarr_dir.rglob("runs.log"))
    assert len(runs) == 6
    for run_log in runs:
        assert len(run_log.read_text().splitlines()) == 1, f"{run_log} ran more than once"
