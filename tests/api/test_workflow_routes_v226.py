"""Workflow task routes of fractal-server 2.26: one workflow task (GET/PATCH/DELETE), insertion
at a position, replacing a task by another version, the type-filters flow and the version
update candidates; through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from typing import Any

from fractal_like.config import Settings

from ..support.helpers import ApiClient, UserClient, expect, make_dataset, make_project, make_task
from ..support.runner_support import COLLECT_URL, PKG_ROOT, collect_body, run_until_final, submit

SCHEMA = {"type": "object", "properties": {"threshold": {"type": "number"}}}


def _manifest(version: str, **changes: dict[str, Any]) -> dict[str, Any]:
    """The test package's manifest, with per-task changes (an arguments schema by default)."""
    manifest = json.loads((PKG_ROOT / "__FRACTAL_MANIFEST__.json").read_text())
    for task in manifest["task_list"]:
        for part in ("parallel", "non_parallel"):
            if task.get(f"executable_{part}"):
                task[f"args_schema_{part}"] = SCHEMA
        task.update(changes.get(task["name"], {}))
    return {**collect_body(), "manifest": manifest, "version": version}


def _collect(user: UserClient, version: str, **changes: dict[str, Any]) -> dict[str, int]:
    tasks = expect(user.post(COLLECT_URL, json=_manifest(version, **changes)), 201)
    return {task["name"]: task["id"] for task in tasks}


def _workflow(user: UserClient, pid: int, name: str = "wf") -> str:
    workflow = expect(user.post(f"/api/v2/project/{pid}/workflow/", json={"name": name}), 201)
    return f"/api/v2/project/{pid}/workflow/{workflow['id']}"


def test_one_workflow_task(api: ApiClient) -> None:
    user, other = api.new_user(), api.new_user()
    pid = make_project(user)["id"]
    parallel = make_task(user, "par", meta_parallel={"cpus_per_task": 2, "mem": 100})
    non_parallel = make_task(user, "nonpar", command_non_parallel="/bin/true")
    url = _workflow(user, pid)
    created = expect(
        user.post(
            f"{url}/wftask/",
            json=[
                {"task_id": parallel["id"], "meta_parallel": {"mem": 500}},
                {"task_id": non_parallel["id"], "args_non_parallel": {"n": 1}},
            ],
        ),
        201,
    )
    # The task's meta is copied in under the given one when the workflow task is made.
    assert created[0]["meta_parallel"] == {"cpus_per_task": 2, "mem": 500}
    first, second = (item["id"] for item in created)

    shown = expect(user.get(f"{url}/wftask/{second}/"), 200)
    assert shown["id"] == second and shown["order"] == 1
    assert shown["task"]["name"] == "nonpar" and shown["args_non_parallel"] == {"n": 1}

    patched = expect(user.patch(f"{url}/wftask/{first}/", json={"args_parallel": {"x": 1}}), 200)
    assert patched["args_parallel"] == {"x": 1}
    # No arguments, whether sent as {} or as null.
    cleared = expect(user.patch(f"{url}/wftask/{first}/", json={"args_parallel": {}}), 200)
    assert cleared["args_parallel"] is None
    # Parts the task type lacks, unknown fields, bad ids.
    expect(user.patch(f"{url}/wftask/{first}/", json={"meta_non_parallel": {"a": 1}}), 422)
    expect(user.patch(f"{url}/wftask/{second}/", json={"args_parallel": {"a": 1}}), 422)
    expect(user.patch(f"{url}/wftask/{first}/", json={"unknown": 1}), 422)
    expect(user.get(f"{url}/wftask/0/"), 422)
    expect(user.get(f"{url}/wftask/{2**31}/"), 422)
    expect(
        user.post(f"{url}/wftask/", json=[{"task_id": parallel["id"], "args_non_parallel": {}}]),
        422,
    )

    # A workflow task of another workflow is not found through this one.
    other_url = _workflow(user, pid, "other")
    expect(user.get(f"{other_url}/wftask/{first}/"), 404)
    expect(user.delete(f"{other_url}/wftask/{first}/"), 404)

    # Anonymous and other users.
    expect(api.client.get(f"{url}/wftask/{first}/"), 401)
    expect(api.client.delete(f"{url}/wftask/{first}/"), 401)
    for call in (other.get, other.delete):
        expect(call(f"{url}/wftask/{first}/"), 403)
    expect(other.patch(f"{url}/wftask/{first}/", json={"alias": "x"}), 403)
    assert expect(user.get(f"{url}/wftask/{first}/"), 200)["alias"] is None

    expect(user.delete(f"{url}/wftask/{first}/"), 204)
    expect(user.get(f"{url}/wftask/{first}/"), 404)
    assert expect(user.get(f"{url}/wftask/{second}/"), 200)["order"] == 0


def test_insert_at_a_position(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user)
    pid = project["id"]
    tasks = [make_task(user, f"t{i}")["id"] for i in range(4)]
    url = _workflow(user, pid)
    expect(user.post(f"{url}/wftask/", json=[{"task_id": tasks[0]}, {"task_id": tasks[1]}]), 201)
    inserted = expect(
        user.post(f"{url}/wftask/?order=1", json=[{"task_id": tasks[2]}, {"task_id": tasks[3]}]),
        201,
    )
    assert [item["order"] for item in inserted] == [1, 2]
    listed = expect(user.get(f"{url}/"), 200)["task_list"]
    assert [item["task_id"] for item in listed] == [tasks[0], tasks[2], tasks[3], tasks[1]]
    assert [item["order"] for item in listed] == [0, 1, 2, 3]
    # At the front, and past the end (appended).
    expect(user.post(f"{url}/wftask/?order=0", json=[{"task_id": tasks[1]}]), 201)
    appended = expect(user.post(f"{url}/wftask/?order=99", json=[{"task_id": tasks[0]}]), 201)
    assert appended[0]["order"] == 5
    listed = expect(user.get(f"{url}/"), 200)["task_list"]
    assert [item["task_id"] for item in listed][:2] == [tasks[1], tasks[0]]
    for bad in ("-1", "x", str(2**31)):
        expect(user.post(f"{url}/wftask/?order={bad}", json=[{"task_id": tasks[0]}]), 422)

    # While a job of the workflow is active, tasks may only be appended.
    dataset = make_dataset(user, pid)
    submit(user, pid, int(url.rsplit("/", 1)[1]), dataset["id"])
    refused = expect(user.post(f"{url}/wftask/?order=0", json=[{"task_id": tasks[0]}]), 422)
    assert "active job" in refused["detail"]
    expect(user.post(f"{url}/wftask/?order=6", json=[{"task_id": tasks[0]}]), 201)
    expect(user.post(f"{url}/wftask/", json=[{"task_id": tasks[0]}]), 201)


def test_type_filters_flow(api: ApiClient) -> None:
    user, other = api.new_user(), api.new_user()
    pid = make_project(user)["id"]
    converter = make_task(
        user,
        "convert",
        command_non_parallel="/bin/true",
        type="converter_non_parallel",
        output_types={"is_3D": True},
    )
    project = make_task(user, "project", input_types={"is_3D": True}, output_types={"is_3D": False})
    measure = make_task(user, "measure")
    url = _workflow(user, pid)
    expect(user.get(f"{url}/type-filters-flow/"), 422)  # no tasks yet
    created = expect(
        user.post(
            f"{url}/wftask/",
            json=[
                {"task_id": converter["id"]},
                {"task_id": project["id"]},
                {"task_id": measure["id"], "type_filters": {"illumination_corrected": True}},
            ],
        ),
        201,
    )
    flow = expect(user.get(f"{url}/type-filters-flow/"), 200)
    assert flow == [
        {
            "workflowtask_id": created[0]["id"],
            "current_type_filters": {},
            "input_type_filters": {},
            "output_type_filters": {"is_3D": True},
        },
        {
            "workflowtask_id": created[1]["id"],
            "current_type_filters": {"is_3D": True},
            "input_type_filters": {"is_3D": True},
            "output_type_filters": {"is_3D": False},
        },
        {
            "workflowtask_id": created[2]["id"],
            "current_type_filters": {"is_3D": False},
            "input_type_filters": {"illumination_corrected": True},
            "output_type_filters": {},
        },
    ]
    expect(api.client.get(f"{url}/type-filters-flow/"), 401)
    expect(other.get(f"{url}/type-filters-flow/"), 403)
    expect(user.get(f"/api/v2/project/{pid}/workflow/0/type-filters-flow/"), 422)
    expect(user.get(f"/api/v2/project/{pid}/workflow/99999/type-filters-flow/"), 404)


def test_version_candidates_and_replace(api: ApiClient, settings: Settings) -> None:
    user, other = api.new_user(), api.new_user()
    project = make_project(user)
    pid = project["id"]
    meta_v1 = {"meta_parallel": {"cpus_per_task": 1, "mem": 100}}
    v1 = _collect(user, "0.1.0", measure_intensity=meta_v1)
    _collect(user, "0.0.5")  # older: never a candidate
    v2 = _collect(
        user, "0.2.0", measure_intensity={"meta_parallel": {"cpus_per_task": 2, "mem": 100}}
    )
    # Newer, but of a type the workflow task cannot take, or without an arguments schema.
    v3 = _collect(
        user,
        "0.3.0",
        measure_intensity={
            "type": "non_parallel",
            "executable_non_parallel": "measure_intensity.py",
            "executable_parallel": None,
            "args_schema_parallel": None,
            "args_schema_non_parallel": SCHEMA,
        },
    )
    v4 = _collect(user, "0.4.0", measure_intensity={"args_schema_parallel": None})
    # Another user's newer version is not offered.
    _collect(other, "0.9.0")
    plain = make_task(user, "no-schema")

    url = _workflow(user, pid)
    created = expect(
        user.post(
            f"{url}/wftask/",
            json=[
                {"task_id": v1["create_images"], "args_non_parallel": {"num_images": 2}},
                {
                    "task_id": v1["measure_intensity"],
                    "args_parallel": {"threshold": 1},
                    "meta_parallel": {"mem": 200, "gpu": True},
                },
                {"task_id": plain["id"]},
            ],
        ),
        201,
    )
    candidates = expect(user.get(f"{url}/version-update-candidates/"), 200)
    assert candidates == [
        [
            {"task_id": v2["create_images"], "version": "0.2.0"},
            {"task_id": v3["create_images"], "version": "0.3.0"},
            {"task_id": v4["create_images"], "version": "0.4.0"},
        ],
        [{"task_id": v2["measure_intensity"], "version": "0.2.0"}],
        [],
    ]
    expect(api.client.get(f"{url}/version-update-candidates/"), 401)
    expect(other.get(f"{url}/version-update-candidates/"), 403)

    wftask = created[1]
    replace = f"{url}/wftask/replace-task/?workflow_task_id={wftask['id']}"
    # Refused: another type, arguments of the wrong part, someone else's task, bad ids.
    expect(user.post(f"{replace}&task_id={v1['create_images']}", json={}), 422)
    expect(
        user.post(
            f"{replace}&task_id={v2['measure_intensity']}", json={"args_non_parallel": {"a": 1}}
        ),
        422,
    )
    foreign = _collect(other, "1.0.0")
    hidden = user.post(f"{replace}&task_id={foreign['measure_intensity']}", json={})
    assert hidden.status_code in (403, 404), hidden.text
    expect(user.post(f"{replace}&task_id=0", json={}), 422)
    expect(user.post(f"{url}/wftask/replace-task/?task_id=1", json={}), 422)
    expect(api.client.post(f"{replace}&task_id={v2['measure_intensity']}", json={}), 401)
    expect(other.post(f"{replace}&task_id={v2['measure_intensity']}", json={}), 403)

    replaced = expect(
        user.post(f"{replace}&task_id={v2['measure_intensity']}", json={"ignored": 1}), 201
    )
    assert replaced["id"] == wftask["id"] and replaced["order"] == 1
    assert replaced["task_id"] == v2["measure_intensity"]
    assert replaced["task"]["id"] == v2["measure_intensity"]
    assert replaced["args_parallel"] == {"threshold": 1}  # kept: no new arguments given
    # The user's changes to the old defaults, on the new defaults.
    assert replaced["meta_parallel"] == {"cpus_per_task": 2, "mem": 200, "gpu": True}
    assert expect(user.get(f"{url}/version-update-candidates/"), 200)[1] == []

    first = created[0]
    new_args = {"num_images": 1}
    replaced = expect(
        user.post(
            f"{url}/wftask/replace-task/?workflow_task_id={first['id']}"
            f"&task_id={v2['create_images']}",
            json={"args_non_parallel": new_args},
        ),
        201,
    )
    assert replaced["args_non_parallel"] == new_args and replaced["order"] == 0
    assert expect(user.get(f"{url}/version-update-candidates/"), 200)[0] == [
        {"task_id": v3["create_images"], "version": "0.3.0"},
        {"task_id": v4["create_images"], "version": "0.4.0"},
    ]

    # The replaced workflow runs: real task processes of the new version.
    expect(user.delete(f"{url}/wftask/{created[2]['id']}/"), 204)
    dataset = make_dataset(user, pid)
    job = submit(user, pid, int(url.rsplit("/", 1)[1]), dataset["id"])
    assert run_until_final(settings, [job["id"]]) == {job["id"]: "done"}
    shown = expect(user.get(f"/api/v2/project/{pid}/job/{job['id']}/"), 200)
    dumped = shown["workflow_dump"]["task_list"]
    assert [item["version"] for item in dumped] == ["0.2.0", "0.2.0"]


def test_meta_carried_to_a_new_version() -> None:
    from fractal_like.services.task_versions import carried_meta

    old = {"cpus_per_task": 1, "mem": 100, "time": "1:00"}
    new = {"cpus_per_task": 2, "mem": 100, "time": "2:00"}
    # Changed and added values stay; a removed default stays removed; the rest is new.
    mine = {"cpus_per_task": 1, "mem": 300, "gpu": True}
    assert carried_meta(old, copy.deepcopy(mine), new) == {
        "cpus_per_task": 2,
        "mem": 300,
        "gpu": True,
    }
    assert carried_meta(old, None, new) == new
    assert carried_meta({}, {"mem": 1}, new) == {**new, "mem": 1}
    assert carried_meta(None, None, None) is None
