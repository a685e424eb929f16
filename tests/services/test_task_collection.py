"""Task collection from packages, with real venvs and real pip (offline: --find-links).

The heavy tests each create as few venvs as they can: one collection (and, for the
lifecycle, one reactivation) per test and database.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from fractal_like.config import Settings

from ..support.collection_support import (
    PKG_NAME,
    PKG_VERSION,
    PYTHON_VERSION,
    TASKS_PKG,
    Wheels,
    collect_and_wait,
    collection_user,
    run_collector,
    upload,
    wheels_fixture,  # noqa: F401 (the `wheels` fixture)
)
from ..support.helpers import ApiClient, UserClient, expect, make_dataset, make_project
from ..support.runner_support import build_workflow, run_until_final, submit

COLLECT = "/api/v2/task/collect/pip/"


def manifest_tasks() -> list[str]:
    manifest = json.loads((TASKS_PKG / "fl_test_tasks" / "__FRACTAL_MANIFEST__.json").read_text())
    return [task["name"] for task in manifest["task_list"]]


def tasks_by_name(user: UserClient, group_id: int) -> dict[str, dict[str, Any]]:
    group = expect(user.get(f"/api/v2/task-group/{group_id}/"), 200)
    return {task["name"]: task for task in group["task_list"]}


def lifecycle(settings: Settings, user: UserClient, group_id: int, action: str) -> dict:
    activity = expect(user.post(f"/api/v2/task-group/{group_id}/{action}/"), 202)
    assert activity["action"] == action and activity["status"] == "pending"
    run_collector(settings, [activity["id"]])
    return expect(user.get(f"/api/v2/task-group/activity/{activity['id']}/"), 200)


def run_job(settings: Settings, user: UserClient, tasks: dict[str, dict[str, Any]]) -> tuple:
    project = make_project(user)
    dataset = make_dataset(user, project["id"])
    workflow = build_workflow(
        user,
        project["id"],
        [
            (tasks["create_images"], {"args_non_parallel": {"num_images": 2}}),
            (tasks["measure_intensity"], {}),
        ],
    )
    job = submit(user, project["id"], workflow["id"], dataset["id"])
    statuses = run_until_final(settings, [job["id"]])
    shown = expect(user.get(f"/api/v2/project/{project['id']}/job/{job['id']}/"), 200)
    assert statuses[job["id"]] == "done", shown["log"]
    return project, workflow, job


def test_collect_wheel_and_run_a_job(api: ApiClient, settings: Settings, wheels: Wheels) -> None:
    user, root = collection_user(api, wheels)
    activity = collect_and_wait(settings, user, upload(user, wheels.tasks))
    assert activity["status"] == "OK", activity["log"]
    assert activity["pkg_name"] == PKG_NAME and activity["version"] == PKG_VERSION
    assert activity["timestamp_ended"] is not None
    assert f"registered {len(manifest_tasks())} task(s)" in activity["log"]

    group = expect(user.get(f"/api/v2/task-group/{activity['taskgroupv2_id']}/"), 200)
    folder = root / str(user.id) / PKG_NAME / PKG_VERSION
    assert group["origin"] == "wheel-file" and group["active"] is True
    assert (group["pkg_name"], group["version"]) == (PKG_NAME, PKG_VERSION)
    assert group["python_version"] == PYTHON_VERSION
    assert group["path"] == str(folder) and group["venv_path"] == str(folder / "venv")
    assert group["wheel_path"] == str(folder / wheels.tasks.name)
    assert Path(group["wheel_path"]).is_file()
    assert f"{PKG_NAME} @ file://{group['wheel_path']}" in group["pip_freeze"]

    # Commands: the venv's python and the script inside the installed package.
    tasks = {task["name"]: task for task in group["task_list"]}
    python, script = shlex.split(tasks["create_images"]["command_non_parallel"])
    assert python == str(folder / "venv" / "bin" / "python")
    assert Path(script).is_file() and Path(script).parent.name == "fl_test_tasks"
    assert Path(script).is_relative_to(folder / "venv")
    assert tasks["illumination_correction"]["type"] == "compound"
    assert tasks["create_images"]["version"] == PKG_VERSION

    # The same package and version again: refused at once, the folder untouched.
    again = expect(upload(user, wheels.tasks), 422)
    assert f"already provides '{PKG_NAME} {PKG_VERSION}'" in again["detail"]
    assert (folder / "venv").is_dir()

    # A job with the collected tasks runs, and its logs come back as a zip.
    project, _workflow, job = run_job(settings, user, tasks)
    response = user.get(f"/api/v2/project/{project['id']}/job/{job['id']}/download/")
    assert response.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "workflow.log" in names
    assert any(name.startswith("1_measure_intensity/") for name in names), names


def test_collect_by_name_then_deactivate_reactivate_delete(
    api: ApiClient, settings: Settings, wheels: Wheels
) -> None:
    user, root = collection_user(api, wheels)
    # No version: the collector asks pip (offline, in the wheels folder) which one it gets.
    response = user.post(
        COLLECT,
        data={
            "package": "Fractal_Like.Test-Tasks",  # any spelling of the name
            "package_extras": "extra-one",
            "pinned_package_versions_pre": json.dumps({"fl-pin-helper": "1.0"}),
            "pinned_package_versions_post": json.dumps({"fl_pin_after": "1.0"}),
        },
    )
    accepted = expect(response, 202)
    assert accepted["version"] is None and accepted["pkg_name"] == PKG_NAME
    activity = collect_and_wait(settings, user, response)
    assert activity["status"] == "OK", activity["log"]
    assert activity["version"] == PKG_VERSION
    log = activity["log"]
    order = [
        log.index("pip would install fractal-like-test-tasks 0.1.0"),
        log.index("installing the versions pinned before the package"),
        log.index(f"installing {PKG_NAME}[extra-one]=={PKG_VERSION}"),
        log.index("installing the versions pinned after the package"),
    ]
    assert order == sorted(order)

    group_id = activity["taskgroupv2_id"]
    group = expect(user.get(f"/api/v2/task-group/{group_id}/"), 200)
    folder = root / str(user.id) / PKG_NAME / PKG_VERSION
    assert group["origin"] == "pypi" and group["path"] == str(folder)
    assert group["pip_extras"] == "extra-one"
    assert group["pinned_package_versions_pre"] == {"fl-pin-helper": "1.0"}
    assert group["pinned_package_versions"] == {"fl-pin-after": "1.0"}
    freeze = group["pip_freeze"]
    assert f"{PKG_NAME}==0.1.0" in freeze and "fl-pin-helper==1.0" in freeze
    assert "fl-pin-after==1.0" in freeze
    assert not list(root.glob(".resolve-*"))  # the throw-away venv is gone
    tasks = tasks_by_name(user, group_id)
    task_id = tasks["create_images"]["id"]

    # Deactivate: the venv goes, the freeze stays, the tasks can no longer be used.
    done = lifecycle(settings, user, group_id, "deactivate")
    assert done["status"] == "OK", done["log"]
    group = expect(user.get(f"/api/v2/task-group/{group_id}/"), 200)
    assert group["active"] is False and group["pip_freeze"] == freeze
    assert not (folder / "venv").exists() and folder.is_dir()
    assert task_id not in [task["id"] for task in expect(user.get("/api/v2/task/"), 200)]
    again = expect(user.post(f"/api/v2/task-group/{group_id}/deactivate/"), 422)
    assert "already inactive" in again["detail"]

    # Reactivate: the same packages again, from the freeze.
    done = lifecycle(settings, user, group_id, "reactivate")
    assert done["status"] == "OK", done["log"]
    assert expect(user.get(f"/api/v2/task-group/{group_id}/"), 200)["active"] is True
    python = folder / "venv" / "bin" / "python"
    check = subprocess.run(
        [str(python), "-c", "import fl_test_tasks, fl_pin_helper, fl_pin_after"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert task_id in [task["id"] for task in expect(user.get("/api/v2/task/"), 200)]

    # Delete: refused while a workflow uses its tasks, and says which.
    project = make_project(user)
    workflow = build_workflow(user, project["id"], [(tasks["create_images"], {})])
    refused = expect(user.post(f"/api/v2/task-group/{group_id}/delete/"), 422)
    assert f"workflow {workflow['name']!r} (id {workflow['id']})" in refused["detail"]
    expect(user.delete(f"/api/v2/project/{project['id']}/workflow/{workflow['id']}/"), 204)
    done = lifecycle(settings, user, group_id, "delete")
    assert done["status"] == "OK", done["log"]
    assert done["taskgroupv2_id"] is None
    expect(user.get(f"/api/v2/task-group/{group_id}/"), 404)
    expect(user.get(f"/api/v2/task/{task_id}/"), 404)
    assert not folder.exists() and not (root / str(user.id)).exists()
    history = expect(user.get("/api/v2/task-group/activity/"), 200)
    assert [item["action"] for item in history] == ["collect", "deactivate", "reactivate", "delete"]
    assert all(item["taskgroupv2_id"] is None for item in history)


def test_failed_collections_leave_nothing_behind(
    api: ApiClient, settings: Settings, wheels: Wheels
) -> None:
    # An index with credentials: pip ignores it (--no-index), the log must not show them.
    private_index = "https://reader:s3cret@127.0.0.1:9/simple"
    extra = ["--no-index", "--find-links", str(wheels.folder), "--extra-index-url", private_index]
    user, root = collection_user(api, wheels, pip_extra_args=extra)
    missing = collect_and_wait(
        settings, user, user.post(COLLECT, data={"package": PKG_NAME, "package_version": "9.9.9"})
    )
    assert missing["status"] == "failed" and missing["taskgroupv2_id"] is None
    assert "No matching distribution found for fractal-like-test-tasks==9.9.9" in missing["log"]
    assert "FAILED: installing" in missing["log"]
    assert "the collection can be asked for again" in missing["log"]
    assert "s3cret" not in missing["log"] and "https://***@127.0.0.1:9/simple" in missing["log"]

    no_manifest = collect_and_wait(settings, user, upload(user, wheels.no_manifest))
    assert no_manifest["status"] == "failed", no_manifest["log"]
    assert "fl-no-manifest 1.0 has no __FRACTAL_MANIFEST__.json" in no_manifest["log"]
    assert no_manifest["taskgroupv2_id"] is None

    assert expect(user.get("/api/v2/task-group/"), 200) == []
    assert not (root / str(user.id)).exists()
    # Nothing blocks a retry.
    retry = expect(upload(user, wheels.no_manifest), 202)
    assert retry["status"] == "pending"
