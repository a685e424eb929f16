"""The real `fractal` client collects a wheel, follows the collection until it is OK, runs
the collected tasks in a job it submits, and downloads the job's logs."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ..support.collection_support import (
    PKG_VERSION,
    Wheels,
    python_config,
    wheels_fixture,  # noqa: F401 (the `wheels` fixture)
)
from ..support.helpers import ADMIN_EMAIL, ADMIN_PASSWORD
from ..support.live_server import FRACTAL_BIN, LiveServer, give_admin_a_profile, start_server

pytestmark = pytest.mark.client


class Fractal:
    def __init__(self, server: LiveServer, home: Path) -> None:
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "FRACTAL_SERVER": server.url,
            "FRACTAL_USER": ADMIN_EMAIL,
            "FRACTAL_PASSWORD": ADMIN_PASSWORD,
            "FRACTAL_CACHE_PATH": str(home),
        }
        self.home = home

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [FRACTAL_BIN, *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    def batch(self, *args: str) -> str:
        return self.run("--batch", *args).stdout.strip()

    def json(self, *args: str) -> object:
        return json.loads(self.run(*args).stdout)


def _offline_resource(server: LiveServer, wheels: Wheels) -> None:
    """pip of this server looks only into the test wheels folder."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        token = client.post(
            "/auth/token/login/", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        (resource,) = client.get("/admin/v2/resource/").json()
        client.patch(
            f"/admin/v2/resource/{resource['id']}/",
            json={"tasks_python_config": python_config(wheels)},
        ).raise_for_status()


def _wait(fractal: Fractal, activity_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        activity = fractal.json("task", "check-collection", activity_id)
        assert isinstance(activity, dict)
        if activity["status"] in ("OK", "failed") or time.monotonic() > deadline:
            return activity
        time.sleep(1.5)  # each check is a new client process: poll gently


def _run_collected_tasks(fractal: Fractal, tmp_path: Path) -> None:
    """A workflow of two collected tasks, submitted and followed by the client."""
    project_id = fractal.batch("project", "new", "wheel project")
    dataset_id = fractal.batch("project", "add-dataset", project_id, "plate")
    workflow_id = fractal.batch("workflow", "new", "wheel workflow", project_id)
    args = tmp_path / "create.json"
    args.write_text(json.dumps({"num_images": 2}))
    fractal.run(
        "workflow", "add-task", project_id, workflow_id, "--task-name", "create_images",
        "--args-non-parallel", str(args),
    )  # fmt: skip
    fractal.run("workflow", "add-task", project_id, workflow_id, "--task-name", "measure_intensity")
    job_id = fractal.batch("job", "submit", project_id, workflow_id, dataset_id)
    deadline = time.monotonic() + 120
    status = ""
    while status not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(1)
        status = fractal.batch("job", "show", project_id, job_id)
    assert status == "done", fractal.run("job", "show", project_id, job_id).stdout
    output = tmp_path / "job-logs"
    fractal.run("job", "download-logs", project_id, job_id, "--output", str(output))
    assert "Job done." in (output / "workflow.log").read_text()
    unit_logs = sorted((output / "1_measure_intensity").glob("par_*-log.txt"))
    assert len(unit_logs) == 2
    # The units ran with the collected package's own venv (its Python is in the command).
    shown = fractal.json("workflow", "show", project_id, workflow_id)
    assert isinstance(shown, dict)
    python, script = shlex.split(shown["task_list"][1]["task"]["command_parallel"])
    assert python.startswith(str(tmp_path)) and python != sys.executable
    assert script.endswith("/measure_intensity.py")


def test_fractal_task_collect_and_check_collection(
    db_url: str, tmp_path: Path, wheels: Wheels
) -> None:
    server = start_server(db_url, tmp_path, runner=True)
    try:
        give_admin_a_profile(server, tmp_path)
        _offline_resource(server, wheels)
        home = tmp_path / "client"
        home.mkdir()
        fractal = Fractal(server, home)

        activity_id = fractal.batch("task", "collect", str(wheels.tasks), "--private")
        assert activity_id.isdigit()
        activity = _wait(fractal, activity_id)
        assert activity["status"] == "OK", fractal.run(
            "task", "check-collection", activity_id, "--include-logs"
        ).stdout
        assert activity["log"] is None  # the client drops it unless asked
        logged = fractal.json("task", "check-collection", activity_id, "--include-logs")
        assert isinstance(logged, dict) and "collect done" in logged["log"]

        tasks = fractal.json("task", "list")
        assert isinstance(tasks, list) and {item["version"] for item in tasks} == {PKG_VERSION}
        assert "create_images" in {item["name"] for item in tasks}
        again = fractal.run("task", "collect", str(wheels.tasks), ok=False)
        assert again.returncode == 1 and "already provides" in again.stdout + again.stderr
        _run_collected_tasks(fractal, tmp_path)
    finally:
        server.stop()
