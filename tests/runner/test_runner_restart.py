"""Restart safety and runner concurrency: SIGKILL mid-job, two runners on one database.

The claims themselves (racing claimers, take-overs) are tested in test_claims.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fractal_like.config import Settings

from ..support.helpers import ADMIN_EMAIL, ADMIN_PASSWORD, ApiClient, make_dataset, make_project
from ..support.live_server import give_admin_a_profile, start_server
from ..support.runner_support import (
    COLLECT_URL,
    build_workflow,
    collect_body,
    collect_test_tasks,
    submit,
)


def _api(server_url: str) -> httpx.Client:
    client = httpx.Client(base_url=server_url, timeout=20)
    token = client.post(
        "/auth/token/login/", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_stopped_server_resumes_the_job_running_every_unit_once(
    db_url: str, tmp_path: Path, how: signal.Signals
) -> None:
    """SIGKILL: the server dies at once. SIGTERM: a graceful shutdown, as for an upgrade.
    Either way the units keep running, and the restarted server finishes the job."""
    server = start_server(db_url, tmp_path, runner=True, FRACTAL_LIKE_RUNNER_STALE_SECONDS="3")
    try:
        give_admin_a_profile(server, tmp_path)
        client = _api(server.url)
        collected = _ok(client.post(COLLECT_URL, json=collect_body()), 201)
        tasks = {task["name"]: task for task in collected}
        project = _ok(client.post("/api/v2/project/", json={"name": "p"}), 201)
        dataset = _ok(
            client.post(f"/api/v2/project/{project['id']}/dataset/", json={"name": "d"}), 201
        )
        workflow = _ok(
            client.post(f"/api/v2/project/{project['id']}/workflow/", json={"name": "w"}), 201
        )
        _ok(
            client.post(
                f"/api/v2/project/{project['id']}/workflow/{workflow['id']}/wftask/",
                json=[
                    {
                        "task_id": tasks["create_images"]["id"],
                        "args_non_parallel": {"num_images": 6},
                    },
                    {"task_id": tasks["measure_intensity"]["id"], "args_parallel": {"sleep": 1.5}},
                ],
            ),
            201,
        )
        job = _ok(
            client.post(
                f"/api/v2/project/{project['id']}/job/submit/"
                f"?workflow_id={workflow['id']}&dataset_id={dataset['id']}",
                json={},
            ),
            202,
        )
        zarr_dir = Path(dataset["zarr_dir"])
        # Kill the whole server (API and its runner) once some units have finished.
        _wait_for(lambda: len(list(zarr_dir.rglob("measurement.json"))) >= 1, 60, "a first unit")
        server.process.send_signal(how)
        server.process.wait(timeout=30)
        done_before = len(list(zarr_dir.rglob("measurement.json")))
        assert done_before < 6, "the job ended before the kill: make the units slower"
    finally:
        server.stop()

    (tmp_path / "again").mkdir()
    restarted = start_server(
        db_url, tmp_path / "again", runner=True, FRACTAL_LIKE_RUNNER_STALE_SECONDS="3"
    )
    try:
        client = _api(restarted.url)
        url = f"/api/v2/project/{project['id']}/job/{job['id']}/"
        _wait_for(
            lambda: _ok(client.get(url))["status"] in ("done", "failed"), 90, "the resumed job"
        )
        shown = _ok(client.get(url))
        assert shown["status"] == "done", shown["executor_error_log"]
        assert "Resuming job" in shown["log"]
        runs = sorted(zarr_dir.rglob("runs.log"))
        assert len(runs) == 6
        for run_log in runs:
            lines = [line for line in run_log.read_text().splitlines() if line]
            assert len(lines) == 1, f"{run_log}: ran {len(lines)} times"
        images = _ok(
            client.post(
                f"/api/v2/project/{project['id']}/dataset/{dataset['id']}/images/query/", json={}
            )
        )
        assert images["total_count"] == 6
        assert all(image["attributes"]["measured"] for image in images["items"])
    finally:
        restarted.stop()


def test_two_standalone_runners_share_the_work(
    api: ApiClient, settings: Settings, tmp_path: Path
) -> None:
    user = api.new_user()
    tasks = collect_test_tasks(user)
    project = make_project(user)
    jobs = []
    datasets = []
    for index in range(4):
        dataset = make_dataset(user, project["id"], f"d{index}")
        datasets.append(dataset)
        workflow = build_workflow(
            user,
            project["id"],
            [
                (tasks["create_images"], {"args_non_parallel": {"num_images": 2}}),
                (tasks["measure_intensity"], {"args_parallel": {"sleep": 0.3}}),
            ],
        )
        jobs.append(submit(user, project["id"], workflow["id"], dataset["id"])["id"])
    env = {
        **os.environ,
        "FRACTAL_LIKE_DB_URL": settings.database_url,
        "FRACTAL_LIKE_DATA_DIR": str(tmp_path / "runner-data"),
        "FRACTAL_LIKE_JWT_SECRET": settings.JWT_SECRET or "",
        "FRACTAL_LIKE_RUNNER_POLL_SECONDS": "0.1",
        "FRACTAL_LIKE_RUNNER_MAX_JOBS": "1",
    }
    runners = [
        subprocess.Popen(
            [sys.executable, "-m", "fractal_like.cli", "runner"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:

        def all_done() -> bool:
            shown = [
                user.get(f"/api/v2/project/{project['id']}/job/{job_id}/").json() for job_id in jobs
            ]
            return all(item["status"] in ("done", "failed") for item in shown)

        _wait_for(all_done, 120, "both runners to finish the jobs")
    finally:
        for process in runners:
            process.send_signal(signal.SIGTERM)
        for process in runners:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    shown = [user.get(f"/api/v2/project/{project['id']}/job/{job_id}/").json() for job_id in jobs]
    assert [item["status"] for item in shown] == ["done"] * 4
    for dataset in datasets:
        for run_log in Path(dataset["zarr_dir"]).rglob("runs.log"):
            assert len(run_log.read_text().splitlines()) == 1
