"""The real `fractal` command-line client (fractal-client 2.24.1) against a live server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..support.helpers import ADMIN_EMAIL, ADMIN_PASSWORD
from ..support.live_server import FRACTAL_BIN, LiveServer, give_admin_a_profile, start_server
from ..support.runner_support import PKG_ROOT

pytestmark = pytest.mark.client


class Fractal:
    """Runs the fractal CLI as a user would, with its own cache folder."""

    def __init__(self, server: LiveServer, cache: Path) -> None:
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(cache),
            "FRACTAL_SERVER": server.url,
            "FRACTAL_USER": ADMIN_EMAIL,
            "FRACTAL_PASSWORD": ADMIN_PASSWORD,
            "FRACTAL_CACHE_PATH": str(cache),
        }
        self.cwd = cache

    def run(
        self, *args: str, batch: bool = False, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [FRACTAL_BIN, *(["--batch"] if batch else []), *args]
        result = subprocess.run(
            command, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=60
        )
        if ok:
            assert result.returncode == 0, (
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def json(self, *args: str) -> object:
        return json.loads(self.run(*args).stdout)

    def batch(self, *args: str) -> str:
        return self.run(*args, batch=True).stdout.strip()


def _client_of_live_server(db_url: str, tmp_path: Path, runner: bool) -> Iterator[Fractal]:
    server = start_server(db_url, tmp_path, runner=runner)
    try:
        give_admin_a_profile(server, tmp_path)
        cache = tmp_path / "client"
        cache.mkdir()
        yield Fractal(server, cache)
    finally:
        server.stop()


@pytest.fixture
def fractal(db_url: str, tmp_path: Path) -> Iterator[Fractal]:
    """A live server without a runner: submitted jobs stay `submitted`."""
    yield from _client_of_live_server(db_url, tmp_path, runner=False)


def _write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_user_and_projects(fractal: Fractal) -> None:
    me = fractal.json("user", "whoami")
    assert me["email"] == ADMIN_EMAIL and me["is_superuser"] is True
    assert fractal.batch("user", "whoami") == str(me["id"])

    project_id = fractal.batch("project", "new", "my project")
    assert project_id.isdigit()
    listed = fractal.json("project", "list")
    assert [item["name"] for item in listed] == ["my project"]
    shown = fractal.json("project", "show", project_id)
    assert shown["id"] == int(project_id) and shown["name"] == "my project"
    edited = fractal.json("project", "edit", project_id, "--new-name", "renamed")
    assert edited["name"] == "renamed"
    assert fractal.json("project", "show", project_id)["name"] == "renamed"

    dataset_id = fractal.batch("project", "add-dataset", project_id, "images")
    dataset = fractal.json("dataset", "show", project_id, dataset_id)
    assert dataset["name"] == "images"
    assert dataset["zarr_dir"].endswith(f"/fractal/{project_id}_renamed/{dataset_id}_images")
    dataset = fractal.json("dataset", "edit", project_id, dataset_id, "--new-name", "plates")
    assert dataset["name"] == "plates"
    sub = fractal.json("project", "add-dataset", project_id, "sub", "--zarr-subfolder", "a/b")
    assert sub["zarr_dir"].endswith("/admin-project-dir/a/b")
    bad = fractal.run(
        "project", "add-dataset", project_id, "escape", "--zarr-subfolder", "../x", ok=False
    )
    assert bad.returncode == 1 and "422" in bad.stderr + bad.stdout

    fractal.run("dataset", "delete", project_id, dataset_id)
    gone = fractal.run("dataset", "show", project_id, dataset_id)  # rc 0: the client prints it
    assert "not found" in gone.stdout
    fractal.run("project", "delete", project_id)
    assert fractal.json("project", "list") == []


def test_tasks_workflows_and_jobs(fractal: Fractal, tmp_path: Path) -> None:
    task_id = fractal.batch(
        "task", "new", "echo-task", "--version", "1.0", "--command-parallel", "/bin/true"
    )
    tasks = fractal.json("task", "list")
    assert [(item["id"], item["name"], item["version"]) for item in tasks] == [
        (int(task_id), "echo-task", "1.0")
    ]
    edited = fractal.json(
        "task",
        "edit",
        "--id",
        task_id,
        "--output-types",
        _write(tmp_path / "out_types.json", {"is_3D": False}),
    )
    assert edited["output_types"] == {"is_3D": False}
    converter_id = fractal.batch(
        "task",
        "new",
        "make-images",
        "--version",
        "1.0",
        "--task-type",
        "converter_non_parallel",
        "--command-non-parallel",
        "/bin/true",
    )

    project_id = fractal.batch("project", "new", "wf project")
    dataset_id = fractal.batch("project", "add-dataset", project_id, "ds")
    workflow_id = fractal.batch("workflow", "new", "my workflow", project_id)
    first = fractal.batch(
        "workflow", "add-task", project_id, workflow_id, "--task-id", converter_id
    )
    args = _write(tmp_path / "args.json", {"threshold": 3})
    second = fractal.batch(
        "workflow",
        "add-task",
        project_id,
        workflow_id,
        "--task-id",
        task_id,
        "--args-parallel",
        args,
    )
    shown = fractal.json("workflow", "show", project_id, workflow_id)
    assert [item["id"] for item in shown["task_list"]] == [int(first), int(second)]
    assert shown["task_list"][1]["args_parallel"] == {"threshold": 3}
    assert shown["task_list"][1]["task"]["name"] == "echo-task"

    new_args = _write(tmp_path / "args2.json", {"threshold": 5})
    patched = fractal.json(
        "workflow", "edit-task", project_id, workflow_id, second, "--args-parallel", new_args
    )
    assert patched["args_parallel"] == {"threshold": 5}
    renamed = fractal.json("workflow", "edit", project_id, workflow_id, "--new-name", "wf2")
    assert renamed["name"] == "wf2"

    export_path = tmp_path / "exported.json"
    fractal.run("workflow", "export", project_id, workflow_id, "--json-file", str(export_path))
    exported = json.loads(export_path.read_text())
    assert [item["task"]["name"] for item in exported["task_list"]] == ["make-images", "echo-task"]
    assert exported["task_list"][1]["task"] == {
        "pkg_name": "echo-task",
        "version": "1.0",
        "name": "echo-task",
    }
    imported = fractal.batch(
        "workflow",
        "import",
        "--project-id",
        project_id,
        "--json-file",
        str(export_path),
        "--workflow-name",
        "imported",
    ).split()
    assert len(imported) == 3  # workflow id, then one id per task
    imported_wf = fractal.json("workflow", "show", project_id, imported[0])
    assert imported_wf["name"] == "imported"
    assert imported_wf["task_list"][1]["args_parallel"] == {"threshold": 5}

    missing = json.loads(export_path.read_text())
    missing["name"] = "missing"
    missing["task_list"][1]["task"]["version"] = "9.9"
    result = fractal.run(
        "workflow",
        "import",
        "--project-id",
        project_id,
        "--json-file",
        _write(tmp_path / "missing.json", missing),
        ok=False,
    )
    assert result.returncode == 1
    assert "Task 'echo-task' (package 'echo-task', version '9.9') not available." in result.stdout
    assert "Available versions: ['1.0']" in result.stdout

    fractal.run("workflow", "rm-task", project_id, imported[0], imported[2])
    after = fractal.json("workflow", "show", project_id, imported[0])
    assert [item["id"] for item in after["task_list"]] == [int(imported[1])]

    job_id = fractal.batch("job", "submit", project_id, workflow_id, dataset_id)
    job = fractal.json("job", "show", project_id, job_id)
    assert job["status"] == "submitted"
    assert job["first_task_index"] == 0 and job["last_task_index"] == 1
    assert job["workflow_dump"]["name"] == "wf2"
    assert job["dataset_dump"]["id"] == int(dataset_id)
    assert fractal.batch("job", "show", project_id, job_id) == "submitted"
    assert fractal.batch("job", "list", project_id) == job_id
    again = fractal.run("job", "submit", project_id, workflow_id, dataset_id, ok=False)
    assert again.returncode == 1 and "already has an active job" in again.stderr + again.stdout


@pytest.fixture
def fractal_with_runner(db_url: str, tmp_path: Path) -> Iterator[Fractal]:
    yield from _client_of_live_server(db_url, tmp_path, runner=True)


def test_job_runs_to_done_and_logs_download(fractal_with_runner: Fractal, tmp_path: Path) -> None:
    fractal = fractal_with_runner
    manifest = str(PKG_ROOT / "__FRACTAL_MANIFEST__.json")
    task_ids = fractal.batch(
        "task",
        "collect-custom",
        "fl-test-tasks",
        sys.executable,
        manifest,
        "--version",
        "0.1.0",
        "--package-root",
        str(PKG_ROOT),
        "--private",
    ).split()
    names = {item["id"]: item["name"] for item in fractal.json("task", "list")}
    by_name = {names[int(task_id)]: task_id for task_id in task_ids}
    project_id = fractal.batch("project", "new", "run project")
    dataset_id = fractal.batch("project", "add-dataset", project_id, "plate")
    workflow_id = fractal.batch("workflow", "new", "run workflow", project_id)
    args = _write(tmp_path / "create.json", {"num_images": 2})
    fractal.run(
        "workflow",
        "add-task",
        project_id,
        workflow_id,
        "--task-id",
        by_name["create_images"],
        "--args-non-parallel",
        args,
    )
    fractal.run(
        "workflow", "add-task", project_id, workflow_id, "--task-id", by_name["measure_intensity"]
    )

    job_id = fractal.batch("job", "submit", project_id, workflow_id, dataset_id)
    deadline = time.monotonic() + 90
    status = ""
    while time.monotonic() < deadline:
        status = fractal.batch("job", "show", project_id, job_id)
        if status in ("done", "failed"):
            break
        time.sleep(0.5)
    assert status == "done", fractal.json("job", "show", project_id, job_id)

    output = tmp_path / "logs"
    fractal.run("job", "download-logs", project_id, job_id, "--output", str(output))
    assert (output / "workflow.log").read_text().count("Job done.") == 1
    assert sorted(path.name for path in output.iterdir() if path.is_dir()) == [
        "0_create_images",
        "1_measure_intensity",
    ]
    # One unit per image, each with its log (the folder may hold runner files too).
    unit_args = sorted((output / "1_measure_intensity").glob("*-args.json"))
    assert len(unit_args) == 2
    assert all(
        path.with_name(path.name[: -len("args.json")] + "log.txt").exists() for path in unit_args
    )
