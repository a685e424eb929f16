"""Workflows, workflow tasks, export/import with task matching, and templates."""

from __future__ import annotations

from ..support.helpers import ApiClient, expect, make_project, make_task, make_workflow


def test_workflow_crud_and_tasks(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user)
    pid = project["id"]
    t1 = make_task(user, "first", command_non_parallel="/bin/true", type="converter_non_parallel")
    t2 = make_task(user, "second", input_types={"is_3D": True})
    t3 = make_task(user, "third")
    workflow = expect(user.post(f"/api/v2/project/{pid}/workflow/", json={"name": "wf"}), 201)
    wid = workflow["id"]
    assert workflow["task_list"] == [] and workflow["project"]["id"] == pid
    expect(user.post(f"/api/v2/project/{pid}/workflow/", json={"name": "wf"}), 422)
    expect(user.post(f"/api/v2/project/{pid}/workflow/", json={"name": ""}), 422)
    expect(user.post(f"/api/v2/project/{pid}/workflow/", json={"name": "x", "bad": 1}), 422)

    url = f"/api/v2/project/{pid}/workflow/{wid}/wftask/"
    created = expect(
        user.post(
            url,
            json=[
                {"task_id": t1["id"], "args_non_parallel": {"n": 1}},
                {"task_id": t2["id"], "type_filters": {"is_3D": True}},
                {"task_id": t3["id"], "args_parallel": {"x": "y"}},
            ],
        ),
        201,
    )
    assert [item["order"] for item in created] == [0, 1, 2]
    assert (
        created[0]["task"]["name"] == "first"
        and created[0]["task_type"] == "converter_non_parallel"
    )
    # Contradicting the task's input types, reserved argument names, unknown tasks:
    expect(user.post(url, json=[{"task_id": t2["id"], "type_filters": {"is_3D": False}}]), 422)
    expect(user.post(url, json=[{"task_id": t3["id"], "args_parallel": {"zarr_url": "/x"}}]), 422)
    expect(user.post(url, json=[{"task_id": 9999}]), 404)
    expect(user.post(url, json=[]), 422)
    expect(user.post(url, json={"task_id": t3["id"]}), 422)

    shown = expect(user.get(f"/api/v2/project/{pid}/workflow/{wid}/"), 200)
    ids = [item["id"] for item in shown["task_list"]]
    reordered = expect(
        user.patch(
            f"/api/v2/project/{pid}/workflow/{wid}/",
            json={"reordered_workflowtask_ids": [ids[2], ids[0], ids[1]]},
        ),
        200,
    )
    assert [item["id"] for item in reordered["task_list"]] == [ids[2], ids[0], ids[1]]
    expect(
        user.patch(
            f"/api/v2/project/{pid}/workflow/{wid}/", json={"reordered_workflowtask_ids": ids[:2]}
        ),
        422,
    )
    patched = expect(user.patch(f"{url}{ids[2]}/", json={"args_parallel": {"x": "z"}}), 200)
    assert patched["args_parallel"] == {"x": "z"}
    expect(user.patch(f"{url}{ids[0]}/", json={"args_parallel": {"a": 1}}), 422)
    expect(user.patch(f"{url}9999/", json={}), 404)
    expect(user.delete(f"{url}{ids[0]}/"), 204)
    after = expect(user.get(f"/api/v2/project/{pid}/workflow/{wid}/"), 200)
    assert [(item["id"], item["order"]) for item in after["task_list"]] == [
        (ids[2], 0),
        (ids[1], 1),
    ]

    listed = expect(user.get(f"/api/v2/project/{pid}/workflow/"), 200)
    assert [item["name"] for item in listed] == ["wf"]
    renamed = expect(
        user.patch(f"/api/v2/project/{pid}/workflow/{wid}/", json={"name": "wf2"}), 200
    )
    assert renamed["name"] == "wf2"
    expect(user.delete(f"/api/v2/project/{pid}/workflow/{wid}/"), 204)
    expect(user.get(f"/api/v2/project/{pid}/workflow/{wid}/"), 404)


def test_workflows_of_others_are_forbidden(api: ApiClient) -> None:
    owner, other = api.new_user(), api.new_user()
    project = make_project(owner)
    workflow = make_workflow(owner, project["id"], [make_task(owner)["id"]])
    url = f"/api/v2/project/{project['id']}/workflow/{workflow['id']}/"
    expect(other.get(url), 403)
    expect(other.patch(url, json={"name": "mine"}), 403)
    expect(other.delete(url), 403)
    expect(other.get(url + "export/"), 403)
    expect(api.client.get(url), 401)
    # A task the other user cannot see cannot enter their workflows.
    own_project = make_project(other, "theirs")
    own_workflow = make_workflow(other, own_project["id"], [])
    private = make_task(owner, "private-task")
    response = other.post(
        f"/api/v2/project/{own_project['id']}/workflow/{own_workflow['id']}/wftask/",
        json=[{"task_id": private["id"]}],
    )
    assert response.status_code in (201, 403)  # shared through the default group, or not
    # A workflow reached through the wrong project is refused.
    expect(other.get(f"/api/v2/project/{own_project['id']}/workflow/{workflow['id']}/"), 422)


def test_export_import_and_matching(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user)
    pid = project["id"]
    task = make_task(user, "segment", version="1.0")
    workflow = make_workflow(user, pid, [task["id"]])
    exported = expect(user.get(f"/api/v2/project/{pid}/workflow/{workflow['id']}/export/"), 200)
    assert exported["task_list"][0]["task"] == {
        "pkg_name": "segment",
        "version": "1.0",
        "name": "segment",
    }

    exported["name"] = "copy"
    imported = expect(user.post(f"/api/v2/project/{pid}/workflow/import/", json=exported), 201)
    assert imported["task_list"][0]["task_id"] == task["id"]
    expect(user.post(f"/api/v2/project/{pid}/workflow/import/", json=exported), 422)  # name taken

    # Without a version the latest one is used.
    newer = make_task(user, "segment", version="1.10")
    exported["name"] = "latest"
    exported["task_list"][0]["task"].pop("version")
    latest = expect(user.post(f"/api/v2/project/{pid}/workflow/import/", json=exported), 201)
    assert latest["task_list"][0]["task_id"] == newer["id"]

    exported["name"] = "missing"
    exported["task_list"][0]["task"]["version"] = "2.0"
    failed = expect(user.post(f"/api/v2/project/{pid}/workflow/import/", json=exported), 422)
    assert failed["detail"] == "[HAS_ERROR_DATA]"
    assert failed["data"][0]["outcome"] == "fail"
    assert sorted(item["version"] for item in failed["data"][0]["available_tasks"]) == [
        "1.0",
        "1.10",
    ]
    names = [item["name"] for item in expect(user.get(f"/api/v2/project/{pid}/workflow/"), 200)]
    assert "missing" not in names  # nothing half-imported

    bad = {"name": "bad", "task_list": [{"task": {"version": "1"}}]}
    expect(user.post(f"/api/v2/project/{pid}/workflow/import/", json=bad), 422)


def test_templates(api: ApiClient) -> None:
    user, other = api.new_user(), api.new_user()
    project = make_project(user)
    pid = project["id"]
    task = make_task(user, "segment", version="1.0")
    workflow = make_workflow(user, pid, [task["id"]])
    template = expect(
        user.post(
            f"/api/v2/workflow-template/?workflow_id={workflow['id']}",
            json={"name": "tpl", "version": 1},
        ),
        201,
    )
    assert template["data"]["task_list"][0]["task"]["name"] == "segment"
    assert template["user_email"] == user.user["email"]
    expect(
        user.post(
            f"/api/v2/workflow-template/?workflow_id={workflow['id']}",
            json={"name": "tpl", "version": 1},
        ),
        422,
    )
    page = expect(user.get("/api/v2/workflow-template/"), 200)
    assert page["total_count"] == 1 and page["email_list"] == [user.user["email"]]
    assert page["items"] == [
        {
            "user_email": user.user["email"],
            "template_name": "tpl",
            "templates": [{"template_id": template["id"], "template_version": 1}],
        }
    ]
    expect(other.get(f"/api/v2/workflow-template/{template['id']}/"), 403)
    expect(other.delete(f"/api/v2/workflow-template/{template['id']}/"), 403)

    exported = expect(user.get(f"/api/v2/workflow-template/{template['id']}/export/"), 200)
    exported["version"] = 2
    second = expect(user.post("/api/v2/workflow-template/import/", json=exported), 201)
    assert second["version"] == 2

    from_template = expect(
        user.post(
            f"/api/v2/project/{pid}/workflow/import-from-template/?template_id={template['id']}",
            json={"name": "from template"},
        ),
        201,
    )
    assert from_template["template_id"] == template["id"]
    assert from_template["task_list"][0]["task_id"] == task["id"]
    expect(user.delete(f"/api/v2/workflow-template/{second['id']}/"), 204)
    expect(user.get(f"/api/v2/workflow-template/{second['id']}/"), 404)
