"""Helpers for runner tests: the test task package, submitting jobs, running a runner."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import itertools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fractal_like.config import Settings
from fractal_like.runner import node
from fractal_like.runner.main import Runner
from fractal_like.runner.node.batch import FORMAT
from fractal_like.runner.warm_choice import command_runs_warm

from .helpers import ApiClient, UserClient, expect, make_dataset, make_project

PKG_ROOT = Path(__file__).parent / "tasks_pkg" / "fl_test_tasks"
FINAL = ("done", "failed")
_names = itertools.count(1)


COLLECT_URL = "/api/v2/task/collect/custom/?private=true"


def collect_body() -> dict[str, Any]:
    """The task/collect/custom/ body registering tests/support/tasks_pkg with this interpreter."""
    return {
        "label": "fl-test-tasks",
        "python_interpreter": sys.executable,
        "manifest": json.loads((PKG_ROOT / "__FRACTAL_MANIFEST__.json").read_text()),
        "version": "0.1.0",
        "package_root": str(PKG_ROOT),
    }


def collect_test_tasks(user: UserClient) -> dict[str, dict[str, Any]]:
    """Register tests/support/tasks_pkg privately for this user; tasks by name."""
    tasks = expect(user.post(COLLECT_URL, json=collect_body()), 201)
    return {task["name"]: task for task in tasks}


@dataclass
class Scene:
    """A user with the test tasks, a project and an empty dataset."""

    user: UserClient
    tasks: dict[str, dict[str, Any]]
    project: dict[str, Any]
    dataset: dict[str, Any]

    def submit_steps(self, *steps: tuple[str, dict[str, Any]]) -> int:
        """Build a workflow of (task name, wftask fields) steps and submit it; the job id."""
        workflow = build_workflow(
            self.user, self.project["id"], [(self.tasks[name], fields) for name, fields in steps]
        )
        return submit(self.user, self.project["id"], workflow["id"], self.dataset["id"])["id"]

    def job(self, job_id: int) -> dict[str, Any]:
        return expect(self.user.get(f"/api/v2/project/{self.project['id']}/job/{job_id}/"), 200)


def new_scene(api: ApiClient) -> Scene:
    user = api.new_user()
    project = make_project(user)
    return Scene(user, collect_test_tasks(user), project, make_dataset(user, project["id"]))


def build_workflow(
    user: UserClient, project_id: int, steps: list[tuple[dict[str, Any], dict[str, Any]]]
) -> dict[str, Any]:
    """A workflow from (task, wftask fields) pairs."""
    name = f"wf-{next(_names)}"
    workflow = expect(
        user.post(f"/api/v2/project/{project_id}/workflow/", json={"name": name}), 201
    )
    expect(
        user.post(
            f"/api/v2/project/{project_id}/workflow/{workflow['id']}/wftask/",
            json=[{"task_id": task["id"], **fields} for task, fields in steps],
        ),
        201,
    )
    return workflow


def submit(
    user: UserClient, project_id: int, workflow_id: int, dataset_id: int, **body: Any
) -> dict:
    return expect(
        user.post(
            f"/api/v2/project/{project_id}/job/submit/"
            f"?workflow_id={workflow_id}&dataset_id={dataset_id}",
            json=body,
        ),
        202,
    )


def run_until_final(
    settings: Settings, job_ids: list[int], timeout: float = 90.0
) -> dict[int, str]:
    """Run an in-process runner until every job has ended; returns their final statuses."""

    async def go() -> dict[int, str]:
        runner = Runner(settings.model_copy(update={"RUNNER_POLL_SECONDS": 0.05}))
        task = asyncio.create_task(runner.run_forever())
        try:
            async with asyncio.timeout(timeout):
                while True:
                    statuses = await runner.queue.statuses(job_ids)
                    if all(statuses.get(job_id) in FINAL for job_id in job_ids):
                        return statuses
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return asyncio.run(go())


def images(user: UserClient, project_id: int, dataset_id: int, **query: Any) -> list[dict]:
    page = expect(
        user.post(f"/api/v2/project/{project_id}/dataset/{dataset_id}/images/query/", json=query),
        200,
    )
    return page["items"]


def parse_stdlib_file(path: Path, relative_ok: bool) -> ast.Module:
    """Parse a file of the node package (run with any Python >= 3.9): Python 3.9 syntax,
    standard-library imports only, relative imports (of the package's own modules) only
    where the file is never run alone by path."""
    tree = ast.parse(path.read_text(), feature_version=(3, 9))
    imported = set()
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            if statement.level:
                assert relative_ok, f"{path.name}: no relative imports, it runs alone"
                continue
            imported.add((statement.module or "").split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, (path.name, imported)
    return tree


# Files of the node package started by path on their own (a warm parent with the task's
# interpreter, the sandbox around pip): no relative imports.
RUN_ALONE = {"warm.py", "sandbox.py"}


def check_node_package() -> list[str]:
    """Check every file of `runner/node/` (see parse_stdlib_file); their names."""
    folder = Path(node.PACKAGE_DIR)
    names = sorted(path.name for path in folder.glob("*.py"))
    assert names == node.package_files(), "the copy beside a job holds every file"
    for name in names:
        parse_stdlib_file(folder / name, relative_ok=name not in RUN_ALONE)
    assert not [p for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"]
    return names


# The files of a unit entry as tests write them (the runner's names, see UnitFiles).
FILE_KEYS = ("args_file", "out_file", "log_file", "exit_code_file", "result_file")


def node_batch(units: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    """A node batch from test entries {unit_id, argv, args, *FILE_KEYS, env, warm}: the
    files name the unit's folder and prefix; `warm` asks for warm start, which the runner
    grants to the `<python> <script.py>` form only (`warm_choice`)."""
    commands: list[dict[str, Any]] = []
    indexes: dict[tuple[tuple[str, ...], bool], int] = {}
    entries = []
    for unit in units:
        warm = command_runs_warm(bool(unit.get("warm")), unit["argv"])
        key = (tuple(unit["argv"]), warm)
        if key not in indexes:
            indexes[key] = len(commands)
            commands.append({"argv": list(unit["argv"]), "warm": warm})
        folder, name = os.path.split(unit["args_file"])
        entry = {
            "id": unit["unit_id"],
            "command": indexes[key],
            "args": unit["args"],
            "folder": folder,
            "prefix": name.removesuffix("-args.json"),
        }
        if unit.get("env"):
            entry["env"] = unit["env"]
        entries.append(entry)
    return {"format": FORMAT, "result_files": True, **top, "commands": commands, "units": entries}
