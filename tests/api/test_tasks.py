"""Tasks, task groups, their activities, custom collection and the core-task admin routes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sqlmodel import Session, SQLModel

from fractal_like.config import Settings
from fractal_like.db import make_sync_engine
from fractal_like.models import TaskGroupActivity, Workflow, WorkflowTask

from ..support.helpers import ApiClient, UserClient, expect

FULL_KEYS = {
    "id",
    "name",
    "type",
    "version",
    "is_core",
    "command_non_parallel",
    "command_parallel",
    "meta_non_parallel",
    "meta_parallel",
    "args_schema_non_parallel",
    "args_schema_parallel",
    "args_schema_version",
    "docs_info",
    "docs_link",
    "input_types",
    "output_types",
    "taskgroupv2_id",
    "category",
    "modality",
    "authors",
    "tags",
}
SLIM_KEYS = {
    "id",
    "name",
    "type",
    "version",
    "is_core",
    "taskgroupv2_id",
    "category",
    "modality",
    "authors",
    "tags",
    "input_types",
    "docs_info",
    "docs_link",
}
GROUP_KEYS = {
    "id",
    "task_list",
    "user_id",
    "user_group_id",
    "origin",
    "pkg_name",
    "version",
    "python_version",
    "path",
    "venv_path",
    "wheel_path",
    "pip_extras",
    "pinned_package_versions",
    "pinned_package_versions_pre",
    "pinned_package_versions_post",
    "pip_freeze",
    "active",
    "timestamp_created",
    "timestamp_last_used",
    "user_email",
    "in_use",
    "archive_path",
    "pixi_version",
}
ACTIVITY_KEYS = {
    "id",
    "user_id",
    "taskgroupv2_id",
    "timestamp_started",
    "timestamp_ended",
    "pkg_name",
    "version",
    "status",
    "action",
    "log",
}


def new_task(user: UserClient, query: str = "", status: int = 201, **body: Any) -> Any:
    body.setdefault("name", "my-task")
    if "command_non_parallel" not in body and "command_parallel" not in body:
        body["command_non_parallel"] = "/bin/echo hello"
    return expect(user.post(f"/api/v2/task/{query}", json=body), status)


def add_rows(settings: Settings, *rows: SQLModel) -> list[int]:
    """Rows written straight into the database (for tables no route of this module writes)."""
    engine = make_sync_engine(settings.database_url)
    try:
        with Session(engine) as session:
            for row in rows:
                session.add(row)
                session.commit()
                session.refresh(row)
            return [row.id for row in rows]  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def use_in_workflow(settings: Settings, user: UserClient, task: dict[str, Any]) -> None:
    project = expect(user.post("/api/v2/project/", json={"name": f"p{task['id']}"}), 201)
    (workflow_id,) = add_rows(settings, Workflow(project_id=project["id"], name="wf"))
    add_rows(
        settings,
        WorkflowTask(workflow_id=workflow_id, task_id=task["id"], order=0, task_type=task["type"]),
    )


def make_group(api: ApiClient, *members: UserClient) -> int:
    group = expect(api.admin.post("/auth/group/", json={"name": f"g{members[0].id}"}), 201)
    for member in members:
        expect(api.admin.post(f"/auth/group/{group['id']}/add-user/{member.id}/"), 200)
    return group["id"]


# --- Creating and reading tasks ---------------------------------------------------------------


def test_create_task_infers_type(api: ApiClient) -> None:
    user = api.new_user()
    both = {"command_non_parallel": "/bin/init", "command_parallel": "/bin/compute"}
    cases = [
        ({"command_non_parallel": "/bin/a"}, "non_parallel"),
        ({"command_parallel": "/bin/a"}, "parallel"),
        (both, "compound"),
        (
            {"command_non_parallel": "/bin/a", "type": "converter_non_parallel"},
            "converter_non_parallel",
        ),
        ({**both, "type": "converter_compound"}, "converter_compound"),
        ({**both, "type": "compound"}, "compound"),
    ]
    for number, (commands, expected) in enumerate(cases):
        task = new_task(user, name=f"t{number}", version="1.0", **commands)
        assert task["type"] == expected
        assert set(task) == FULL_KEYS
        assert task["is_core"] is False


def test_create_task_reads_back_full_and_slim(api: ApiClient) -> None:
    user = api.new_user()
    body = {
        "name": "segment",
        "version": "0.1.0",
        "command_non_parallel": "python /opt/init.py",
        "command_parallel": "python /opt/compute.py",
        "meta_non_parallel": {"cpus_per_task": 1},
        "meta_parallel": {"mem": 4000},
        "args_schema_non_parallel": {"type": "object"},
        "args_schema_parallel": {"type": "object", "properties": {}},
        "args_schema_version": "pydantic_v2",
        "input_types": {"is_3D": True},
        "output_types": {"segmented": True},
        "category": "Segmentation",
        "modality": "HCS",
        "tags": ["cellpose", "2D"],
        "authors": "Ada Lovelace",
        "docs_info": "Segments things.",
        "docs_link": "https://example.org/docs",
    }
    created = new_task(user, **body)
    for key, value in body.items():
        assert created[key] == value, key
    assert created["type"] == "compound"

    shown = expect(user.get(f"/api/v2/task/{created['id']}/"), 200)
    assert shown == created

    listed = expect(user.get("/api/v2/task/"), 200)
    assert len(listed) == 1
    assert set(listed[0]) == SLIM_KEYS
    assert listed[0]["id"] == created["id"] and listed[0]["type"] == "compound"

    group = expect(user.get(f"/api/v2/task-group/{created['taskgroupv2_id']}/"), 200)
    assert set(group) == GROUP_KEYS
    assert group["origin"] == "other"
    assert group["pkg_name"] == "segment" and group["version"] == "0.1.0"
    assert group["user_id"] == user.id
    default_group = user.user["group_ids_names"][0][0]
    assert group["user_group_id"] == default_group
    assert group["task_list"] == [created]
    assert group["timestamp_created"].endswith("+00:00")


BAD_TASK_BODIES: list[dict[str, Any]] = [
    {"name": "no-command"},
    {"name": "x", "command_non_parallel": "/bin/a", "type": "parallel"},
    {"name": "x", "command_parallel": "/bin/a", "type": "non_parallel"},
    {"name": "x", "command_non_parallel": "/bin/a", "type": "converter_compound"},
    {"name": "x", "command_parallel": "/bin/a", "type": "converter_non_parallel"},
    {
        "name": "x",
        "command_non_parallel": "/bin/a",
        "command_parallel": "/b",
        "type": "parallel",
    },
    {"name": "x", "command_non_parallel": "/bin/a", "type": "sequential"},
    {"name": "x", "command_non_parallel": "/bin/a", "meta_parallel": {"mem": 1}},
    {"name": "x", "command_parallel": "/bin/a", "args_schema_non_parallel": {}},
    {"name": "x", "command_non_parallel": "/bin/a", "unknown": 1},
    {"name": "", "command_non_parallel": "/bin/a"},
    {"name": "x" * 256, "command_non_parallel": "/bin/a"},
    {"name": "x", "command_non_parallel": "a" * 8193},
    {"name": "x", "command_non_parallel": ""},
    {"name": "x", "command_non_parallel": 3},
    {"name": "x", "command_non_parallel": "/bin/a", "input_types": {"a": "maybe"}},
    {"name": "x", "command_non_parallel": "/bin/a", "input_types": []},
    {"name": "x", "command_non_parallel": "/bin/a", "tags": "one"},
    {"name": "x", "command_non_parallel": "/bin/a", "tags": ["t"] * 101},
    {"name": "x", "command_non_parallel": "/bin/a", "meta_non_parallel": "big"},
    {"name": ["x"], "command_non_parallel": "/bin/a"},
]


def test_create_task_refuses_bad_bodies(api: ApiClient) -> None:
    user = api.new_user()
    for body in BAD_TASK_BODIES:
        response = user.post("/api/v2/task/", json=body)
        assert response.status_code == 422, (body, response.text)
    assert expect(user.get("/api/v2/task/"), 200) == []


def test_create_task_refuses_bad_json_and_queries(api: ApiClient) -> None:
    user = api.new_user()
    response = user.post(
        "/api/v2/task/", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    expect(response, 422)
    expect(user.post("/api/v2/task/", json=[1, 2]), 422)
    body = {"name": "t", "command_parallel": "/bin/a"}
    expect(user.post("/api/v2/task/?private=maybe", json=body), 422)
    expect(user.post("/api/v2/task/?user_group_id=abc", json=body), 422)
    expect(user.post("/api/v2/task/?user_group_id=0", json=body), 422)
    expect(user.post("/api/v2/task/?user_group_id=99999999999", json=body), 422)


def test_create_task_duplicates(api: ApiClient) -> None:
    alice, bob = api.new_user(), api.new_user()
    new_task(alice, name="dup", version="1")
    new_task(alice, name="dup", version="1", status=422)
    new_task(alice, name="dup", version="1", query="?private=true", status=422)
    new_task(alice, name="dup", version="2")
    new_task(alice, name="dup")
    new_task(alice, name="dup", status=422)
    # Bob sees Alice's shared task group, so he cannot add the same package name and version...
    new_task(bob, name="dup", version="1", status=422)
    # ...but a task group private to Alice does not stand in his way.
    new_task(alice, name="secret", version="1", query="?private=true")
    new_task(bob, name="secret", version="1")


def test_create_task_sharing_options(api: ApiClient) -> None:
    alice, bob, carol = api.new_user(), api.new_user(), api.new_user()
    group_id = make_group(api, alice, bob)

    private = new_task(alice, name="private", query="?private=true")
    shared = new_task(alice, name="lab", query=f"?user_group_id={group_id}")
    public = new_task(alice, name="public")

    def visible(user: UserClient) -> set[str]:
        return {task["name"] for task in expect(user.get("/api/v2/task/"), 200)}

    assert visible(alice) == {"private", "lab", "public"}
    assert visible(bob) == {"lab", "public"}
    assert visible(carol) == {"public"}

    expect(bob.get(f"/api/v2/task/{private['id']}/"), 403)
    expect(carol.get(f"/api/v2/task/{shared['id']}/"), 403)
    expect(bob.get(f"/api/v2/task/{shared['id']}/"), 200)
    expect(carol.get(f"/api/v2/task/{public['id']}/"), 200)
    expect(bob.get(f"/api/v2/task-group/{private['taskgroupv2_id']}/"), 403)
    group = expect(alice.get(f"/api/v2/task-group/{private['taskgroupv2_id']}/"), 200)
    assert group["user_group_id"] is None

    expect(
        carol.post(
            f"/api/v2/task/?user_group_id={group_id}", json={"name": "n", "command_parallel": "/a"}
        ),
        403,
    )
    expect(
        alice.post(
            "/api/v2/task/?user_group_id=9999", json={"name": "n", "command_parallel": "/a"}
        ),
        404,
    )
    expect(
        alice.post(
            f"/api/v2/task/?private=true&user_group_id={group_id}",
            json={"name": "n", "command_parallel": "/a"},
        ),
        422,
    )


def test_task_routes_need_a_token_and_a_profile(api: ApiClient) -> None:
    client = api.client
    expect(client.get("/api/v2/task/"), 401)
    expect(client.post("/api/v2/task/", json={"name": "x", "command_parallel": "/a"}), 401)
    expect(client.get("/api/v2/task/1/"), 401)
    expect(client.patch("/api/v2/task/1/", json={}), 401)
    expect(client.delete("/api/v2/task/1/"), 401)
    expect(client.post("/api/v2/task/collect/custom/", json={}), 401)
    expect(client.get("/api/v2/task-group/"), 401)
    expect(client.get("/api/v2/task-group/1/"), 401)
    expect(client.patch("/api/v2/task-group/1/", json={}), 401)
    expect(client.delete("/api/v2/task-group/1/"), 401)
    expect(client.get("/api/v2/task-group/activity/"), 401)
    expect(client.get("/api/v2/task-group/activity/1/"), 401)
    expect(client.post("/admin/v2/task/make-core/", json=[1]), 401)
    expect(client.post("/admin/v2/task/make-not-core/", json=[1]), 401)
    no_profile = api.new_user(with_profile=False)
    expect(no_profile.get("/api/v2/task/"), 403)


def test_missing_ids_are_404(api: ApiClient) -> None:
    user = api.new_user()
    expect(user.get("/api/v2/task/999/"), 404)
    expect(user.patch("/api/v2/task/999/", json={"name": "x"}), 404)
    expect(user.delete("/api/v2/task/999/"), 404)
    expect(user.get("/api/v2/task-group/999/"), 404)
    expect(user.patch("/api/v2/task-group/999/", json={"user_group_id": None}), 404)
    expect(user.delete("/api/v2/task-group/999/"), 404)
    expect(user.get("/api/v2/task-group/activity/999/"), 404)
    expect(user.get("/api/v2/task/abc/"), 422)
    expect(user.get("/api/v2/task-group/abc/"), 422)


def test_list_filters(api: ApiClient) -> None:
    user = api.new_user()
    new_task(user, name="a", category="Segmentation", modality="HCS", authors="Ada Lovelace")
    new_task(user, name="b", category="Registration", modality="lightsheet", authors="Alan 100%")
    new_task(user, name="c")

    def names(query: str) -> list[str]:
        return [task["name"] for task in expect(user.get(f"/api/v2/task/{query}"), 200)]

    assert names("") == ["a", "b", "c"]
    assert names("?category=segmentation") == ["a"]
    assert names("?modality=LIGHTSHEET") == ["b"]
    assert names("?author=lovelace") == ["a"]
    assert names("?author=100%25") == ["b"]
    assert names("?author=%25") == ["b"]
    assert names("?category=Registration&modality=HCS") == []
    expect(user.get("/api/v2/task/?category="), 422)


# --- Changing and deleting tasks --------------------------------------------------------------


def test_patch_task(api: ApiClient) -> None:
    alice, bob = api.new_user(), api.new_user()
    task = new_task(alice, name="np", command_non_parallel="/bin/a")
    url = f"/api/v2/task/{task['id']}/"
    changes = {
        "name": "renamed",
        "command_non_parallel": "/bin/b",
        "input_types": {"is_3D": False},
        "output_types": {"done": True},
        "category": "Conversion",
        "modality": "HCS",
        "authors": "Someone",
        "tags": ["x"],
    }
    patched = expect(alice.patch(url, json=changes), 200)
    for key, value in changes.items():
        assert patched[key] == value
    assert expect(alice.get(url), 200) == patched
    cleared = expect(alice.patch(url, json={"category": None, "authors": None}), 200)
    assert cleared["category"] is None and cleared["authors"] is None
    assert cleared["modality"] == "HCS"
    assert expect(alice.patch(url, json={}), 200) == cleared

    expect(alice.patch(url, json={"command_parallel": "/bin/c"}), 422)
    expect(alice.patch(url, json={"command_non_parallel": None}), 422)
    expect(alice.patch(url, json={"name": None}), 422)
    expect(alice.patch(url, json={"input_types": None}), 422)
    # Null tags (nullable in Fractal's schema) clear them; the list column never holds NULL.
    assert expect(alice.patch(url, json={"tags": None}), 200)["tags"] == []
    assert expect(alice.get(url), 200)["tags"] == []
    expect(alice.patch(url, json={"name": ""}), 422)
    expect(alice.patch(url, json={"command_non_parallel": "x" * 8193}), 422)
    expect(alice.patch(url, json={"type": "parallel"}), 422)
    expect(alice.patch(url, json={"meta_parallel": {}}), 422)
    expect(alice.patch(url, json={"output_types": {"a": [1]}}), 422)
    # Bob can see (and use) the task, but not change it.
    expect(bob.get(url), 200)
    expect(bob.patch(url, json={"name": "mine"}), 403)

    parallel = new_task(alice, name="p", command_parallel="/bin/p")
    expect(alice.patch(f"/api/v2/task/{parallel['id']}/", json={"command_non_parallel": "/x"}), 422)
    ok = expect(
        alice.patch(f"/api/v2/task/{parallel['id']}/", json={"command_parallel": "/y"}), 200
    )
    assert ok["command_parallel"] == "/y"
    compound = new_task(alice, name="c", command_non_parallel="/i", command_parallel="/c")
    curl = f"/api/v2/task/{compound['id']}/"
    expect(alice.patch(curl, json={"command_parallel": None}), 422)
    both = expect(
        alice.patch(curl, json={"command_non_parallel": "/i2", "command_parallel": "/c2"}), 200
    )
    assert (both["command_non_parallel"], both["command_parallel"]) == ("/i2", "/c2")


def test_superuser_may_change_other_users_tasks(api: ApiClient) -> None:
    alice = api.new_user()
    boss = api.new_user(superuser=True)
    task = new_task(alice, name="hidden", query="?private=true")
    expect(boss.get(f"/api/v2/task/{task['id']}/"), 200)
    patched = expect(boss.patch(f"/api/v2/task/{task['id']}/", json={"name": "fixed"}), 200)
    assert patched["name"] == "fixed"
    expect(boss.delete(f"/api/v2/task/{task['id']}/"), 204)


def test_delete_task(api: ApiClient, settings: Settings) -> None:
    alice, bob = api.new_user(), api.new_user()
    task = new_task(alice, name="gone", version="1")
    expect(bob.delete(f"/api/v2/task/{task['id']}/"), 403)
    expect(alice.delete(f"/api/v2/task/{task['id']}/"), 204)
    expect(alice.get(f"/api/v2/task/{task['id']}/"), 404)
    # Its task group had no other task, so it is gone too and the name can be used again.
    expect(alice.get(f"/api/v2/task-group/{task['taskgroupv2_id']}/"), 404)
    again = new_task(alice, name="gone", version="1")

    use_in_workflow(settings, alice, again)
    response = expect(alice.delete(f"/api/v2/task/{again['id']}/"), 422)
    assert "workflow" in response["detail"]
    expect(alice.get(f"/api/v2/task/{again['id']}/"), 200)


# --- Task groups ------------------------------------------------------------------------------


def test_task_group_list_and_filters(api: ApiClient) -> None:
    alice, bob = api.new_user(), api.new_user()
    mine = new_task(alice, name="mine", args_schema_non_parallel={"type": "object"})
    new_task(alice, name="private", query="?private=true")
    theirs = new_task(bob, name="theirs")

    # Fractal's shape: [pkg_name, [groups of that name, one per version]] pairs, by name.
    listed = expect(alice.get("/api/v2/task-group/"), 200)
    assert [name for name, _groups in listed] == ["mine", "private", "theirs"]
    groups = [group for _name, same in listed for group in same]
    assert all(set(group) == GROUP_KEYS for group in groups)
    assert groups[0]["task_list"][0]["id"] == mine["id"]
    assert "args_schema_non_parallel" not in groups[0]["task_list"][0]  # slim tasks
    assert groups[0]["user_email"] == alice.user["email"] and groups[0]["in_use"] is False
    assert groups[2]["task_list"][0]["id"] == theirs["id"]
    assert groups[2]["user_email"] == bob.user["email"]

    owned = expect(alice.get("/api/v2/task-group/?only_owner=true"), 200)
    assert [name for name, _groups in owned] == ["mine", "private"]
    active = expect(alice.get("/api/v2/task-group/?only_active=true"), 200)
    assert len(active) == 3
    assert [name for name, _groups in expect(bob.get("/api/v2/task-group/"), 200)] == [
        "mine",
        "theirs",
    ]
    expect(alice.get("/api/v2/task-group/?only_owner=perhaps"), 422)


def test_task_group_patch(api: ApiClient) -> None:
    alice, bob, carol = api.new_user(), api.new_user(), api.new_user()
    lab = make_group(api, alice, bob)
    task = new_task(alice, name="pkg", version="1")
    url = f"/api/v2/task-group/{task['taskgroupv2_id']}/"

    private = expect(alice.patch(url, json={"user_group_id": None}), 200)
    assert private["user_group_id"] is None
    assert private["task_list"][0]["id"] == task["id"]
    expect(bob.get(url), 403)
    expect(bob.get(f"/api/v2/task/{task['id']}/"), 403)

    shared = expect(alice.patch(url, json={"user_group_id": lab}), 200)
    assert shared["user_group_id"] == lab
    expect(bob.get(url), 200)
    expect(carol.get(url), 403)
    unchanged = expect(alice.patch(url, json={}), 200)
    assert unchanged["user_group_id"] == lab

    expect(bob.patch(url, json={"user_group_id": None}), 403)
    expect(carol.patch(url, json={"user_group_id": None}), 403)
    other = make_group(api, carol)
    expect(alice.patch(url, json={"user_group_id": other}), 403)
    expect(alice.patch(url, json={"user_group_id": 9999}), 404)
    expect(alice.patch(url, json={"user_group_id": "lab"}), 422)
    expect(alice.patch(url, json={"active": False}), 422)

    # Bob's own package of the same name and version cannot join the lab group twice.
    bobs = new_task(bob, name="pkg", version="1", query="?private=true", status=422)
    assert "already provides" in bobs["detail"]
    expect(alice.patch(url, json={"user_group_id": None}), 200)
    bobs = new_task(bob, name="pkg", version="1", query="?private=true")
    expect(alice.patch(url, json={"user_group_id": lab}), 200)
    expect(
        bob.patch(f"/api/v2/task-group/{bobs['taskgroupv2_id']}/", json={"user_group_id": lab}),
        422,
    )


def test_task_group_delete(api: ApiClient, settings: Settings) -> None:
    alice, bob = api.new_user(), api.new_user()
    boss = api.new_user(superuser=True)
    first = new_task(alice, name="first")
    url = f"/api/v2/task-group/{first['taskgroupv2_id']}/"
    expect(bob.delete(url), 403)
    expect(alice.delete(url), 204)
    expect(alice.get(url), 404)
    expect(alice.get(f"/api/v2/task/{first['id']}/"), 404)

    used = new_task(alice, name="used")
    use_in_workflow(settings, alice, used)
    expect(alice.delete(f"/api/v2/task-group/{used['taskgroupv2_id']}/"), 422)
    expect(alice.get(f"/api/v2/task/{used['id']}/"), 200)

    hidden = new_task(alice, name="hidden", query="?private=true")
    expect(boss.delete(f"/api/v2/task-group/{hidden['taskgroupv2_id']}/"), 204)


def test_task_group_activities(api: ApiClient, settings: Settings) -> None:
    alice, bob = api.new_user(), api.new_user()
    boss = api.new_user(superuser=True)
    task = new_task(alice, name="pkg", version="1")
    ids = add_rows(
        settings,
        TaskGroupActivity(
            user_id=alice.id,
            taskgroupv2_id=task["taskgroupv2_id"],
            pkg_name="pkg",
            version="1",
            status="OK",
            action="collect",
            log="collected",
        ),
        TaskGroupActivity(user_id=alice.id, pkg_name="other", status="failed", action="collect"),
        TaskGroupActivity(user_id=bob.id, pkg_name="bobs", action="collect"),
    )
    listed = expect(alice.get("/api/v2/task-group/activity/"), 200)
    assert [item["id"] for item in listed] == ids[:2]
    assert set(listed[0]) == ACTIVITY_KEYS
    assert listed[0]["log"] == "collected" and listed[0]["taskgroupv2_id"] == task["taskgroupv2_id"]
    assert listed[0]["timestamp_started"].endswith("+00:00")
    assert listed[0]["timestamp_ended"] is None

    def filtered(query: str) -> list[int]:
        items = expect(alice.get(f"/api/v2/task-group/activity/?{query}"), 200)
        return [item["id"] for item in items]

    assert filtered("status=failed") == [ids[1]]
    assert filtered("pkg_name=PK") == [ids[0]]
    assert filtered(f"taskgroupv2_id={task['taskgroupv2_id']}") == [ids[0]]
    assert filtered("action=reactivate") == []
    assert filtered(f"task_group_activity_id={ids[1]}") == [ids[1]]
    assert filtered("timestamp_started_min=2000-01-01T00:00:00Z") == ids[:2]
    assert filtered("timestamp_started_min=2999-01-01T00:00:00%2B02:00") == []
    expect(alice.get("/api/v2/task-group/activity/?taskgroupv2_id=x"), 422)
    expect(alice.get("/api/v2/task-group/activity/?action=explode"), 422)
    expect(alice.get("/api/v2/task-group/activity/?timestamp_started_min=2000-01-01T00:00"), 422)

    shown = expect(alice.get(f"/api/v2/task-group/activity/{ids[0]}/"), 200)
    assert shown == listed[0]
    expect(alice.get(f"/api/v2/task-group/activity/{ids[2]}/"), 403)
    expect(bob.get(f"/api/v2/task-group/activity/{ids[0]}/"), 403)
    # Only one's own, as in Fractal: admins read others' under /admin/v2/task-group/activity/.
    expect(boss.get(f"/api/v2/task-group/activity/{ids[0]}/"), 403)
    assert [item["id"] for item in expect(bob.get("/api/v2/task-group/activity/"), 200)] == [ids[2]]

    # Deleting the task group keeps its activities, unlinked.
    expect(alice.delete(f"/api/v2/task-group/{task['taskgroupv2_id']}/"), 204)
    kept = expect(alice.get(f"/api/v2/task-group/activity/{ids[0]}/"), 200)
    assert kept["taskgroupv2_id"] is None


# --- Custom collection ------------------------------------------------------------------------


def manifest(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "manifest_version": "2",
        "has_args_schemas": True,
        "args_schema_version": "pydantic_v2",
        "authors": "Test Authors",
        "task_list": [
            {
                "name": "create",
                "type": "converter_non_parallel",
                "executable_non_parallel": "create.py",
                "args_schema_non_parallel": {"type": "object"},
                "meta_non_parallel": {"cpus_per_task": 1},
                "category": "Conversion",
                "tags": ["zarr"],
                "docs_info": "Creates images.",
            },
            {
                "name": "measure",
                "executable_non_parallel": "init.py",
                "executable_parallel": "tasks/measure.py",
                "args_schema_non_parallel": {"type": "object"},
                "args_schema_parallel": {"type": "object"},
                "input_types": {"is_3D": True},
                "output_types": {"measured": True},
                "future_key": "ignored",
            },
        ],
    }
    data.update(changes)
    return data


def make_package(parent: Path, name: str = "mypkg") -> Path:
    root = parent / name
    (root / "tasks").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    for executable in ("create.py", "init.py", "tasks/measure.py"):
        (root / executable).write_text("print('task')\n")
    (root / "__FRACTAL_MANIFEST__.json").write_text(json.dumps(manifest()))
    return root


def collect(user: UserClient, body: dict[str, Any], status: int, query: str = "") -> Any:
    return expect(user.post(f"/api/v2/task/collect/custom/{query}", json=body), status)


def test_collect_custom_from_package_root(api: ApiClient, tmp_path: Path) -> None:
    alice, bob = api.new_user(), api.new_user()
    root = make_package(tmp_path)
    body = {
        "label": "my-package",
        "python_interpreter": sys.executable,
        "package_root": str(root),
        "version": "1.2.3",
        "manifest": json.loads((root / "__FRACTAL_MANIFEST__.json").read_text()),
    }
    tasks = collect(alice, body, 201)
    assert [task["name"] for task in tasks] == ["create", "measure"]
    create, measure = tasks
    assert set(create) == FULL_KEYS
    assert create["type"] == "converter_non_parallel"
    assert create["command_non_parallel"] == f"{sys.executable} {root}/create.py"
    assert create["command_parallel"] is None
    assert create["meta_non_parallel"] == {"cpus_per_task": 1}
    assert create["args_schema_version"] == "pydantic_v2"
    assert create["authors"] == "Test Authors"
    assert create["version"] == "1.2.3"
    assert create["category"] == "Conversion" and create["tags"] == ["zarr"]
    assert create["docs_info"] == "Creates images."
    assert measure["type"] == "compound"
    assert measure["command_non_parallel"] == f"{sys.executable} {root}/init.py"
    assert measure["command_parallel"] == f"{sys.executable} {root}/tasks/measure.py"
    assert measure["input_types"] == {"is_3D": True}
    assert measure["output_types"] == {"measured": True}

    group = expect(alice.get(f"/api/v2/task-group/{create['taskgroupv2_id']}/"), 200)
    assert group["origin"] == "other"
    assert (group["pkg_name"], group["version"], group["path"]) == (
        "my-package",
        "1.2.3",
        str(root),
    )
    assert [task["id"] for task in group["task_list"]] == [create["id"], measure["id"]]
    assert {task["id"] for task in expect(bob.get("/api/v2/task/"), 200)} == {
        create["id"],
        measure["id"],
    }

    # The same label and version again is refused; another version is fine, private too.
    collect(alice, body, 422)
    collect(bob, body, 422)
    private = collect(alice, {**body, "version": "2"}, 201, query="?private=true")
    expect(bob.get(f"/api/v2/task/{private[0]['id']}/"), 403)

    # A task of a multi-task group cannot be renamed like its sibling.
    expect(alice.patch(f"/api/v2/task/{create['id']}/", json={"name": "measure"}), 422)


def test_collect_custom_quotes_paths_with_spaces(api: ApiClient, tmp_path: Path) -> None:
    user = api.new_user()
    root = make_package(tmp_path / "with space")
    body = {
        "label": "spaced",
        "python_interpreter": sys.executable,
        "package_root": str(root) + "/",
        "manifest": manifest(),
    }
    create, _measure = collect(user, body, 201)
    assert create["command_non_parallel"] == f"{sys.executable} '{root}/create.py'"
    assert create["version"] is None


def test_collect_custom_from_package_name(api: ApiClient) -> None:
    import fractal_like

    user = api.new_user()
    package_root = Path(fractal_like.__file__).parent
    body = {
        "label": "fractal-like-itself",
        "python_interpreter": sys.executable,
        "package_name": "fractal-like",
        "version": "0",
        "manifest": {
            "manifest_version": "2",
            "task_list": [{"name": "cli", "executable_non_parallel": "cli.py"}],
        },
    }
    (task,) = collect(user, body, 201)
    assert task["type"] == "non_parallel"
    assert task["command_non_parallel"] == f"{sys.executable} {package_root}/cli.py"
    group = expect(user.get(f"/api/v2/task-group/{task['taskgroupv2_id']}/"), 200)
    assert group["path"] == str(package_root)

    missing = collect(user, {**body, "package_name": "surely_not_installed_pkg"}, 422)
    assert "not importable" in missing["detail"]
    collect(user, {**body, "package_name": "shlex"}, 422)  # a module, not a package
    collect(user, {**body, "package_name": "fractal_like.nothing_here"}, 422)
    collect(user, {**body, "package_name": "os; rm -rf /"}, 422)
    collect(user, {**body, "package_name": "../etc"}, 422)


BAD_COLLECT_CHANGES: list[dict[str, Any]] = [
    {"python_interpreter": "python3"},
    {"python_interpreter": "/no/such/python"},
    {"python_interpreter": "__TMP__"},
    {"python_interpreter": "__NOT_EXECUTABLE__"},
    {"package_root": "relative/path"},
    {"package_root": "/no/such/folder"},
    {"package_root": "__NOT_A_FOLDER__"},
    {"package_name": "mypkg"},
    {"package_root": None},
    {"label": ""},
    {"label": "x" * 256},
    {"extra": True},
    {"manifest": "{}"},
    {"manifest": {"manifest_version": "1", "task_list": []}},
    {"manifest": {"task_list": []}},
    {"manifest": manifest(task_list=[{"name": "t"}])},
    {
        "manifest": manifest(
            has_args_schemas=False,
            task_list=[{"name": "t", "executable_non_parallel": "missing.py"}],
        )
    },
    {
        "manifest": manifest(
            has_args_schemas=False,
            task_list=[{"name": "t", "executable_non_parallel": "../create.py"}],
        )
    },
    {
        "manifest": manifest(
            has_args_schemas=False,
            task_list=[{"name": "t", "executable_non_parallel": "/bin/ls"}],
        )
    },
    {
        "manifest": manifest(
            has_args_schemas=False,
            task_list=[{"name": "t", "executable_non_parallel": "tasks"}],
        )
    },
    {
        "manifest": manifest(
            has_args_schemas=False,
            task_list=[{"name": "t", "type": "parallel", "executable_non_parallel": "create.py"}],
        )
    },
    {"manifest": manifest(task_list=[{"name": "t", "executable_non_parallel": "create.py"}])},
    {
        "manifest": manifest(
            has_args_schemas=False,
            task_list=[{"name": "t", "executable_non_parallel": "create.py"}] * 2,
        )
    },
    {
        "manifest": manifest(
            has_args_schemas=False,
            task_list=[
                {"name": "t", "executable_non_parallel": "create.py", "meta_parallel": {"a": 1}}
            ],
        )
    },
    {
        "manifest": manifest(
            has_args_schemas=False,
            task_list=[
                {"name": "t", "executable_non_parallel": "create.py", "input_types": {"a": 1.5}}
            ],
        )
    },
    {
        "manifest": manifest(
            has_args_schemas=False,
            task_list=[{"name": "t", "executable_non_parallel": "x" * 8200}],
        )
    },
]


def test_collect_custom_refuses_bad_bodies(api: ApiClient, tmp_path: Path) -> None:
    user = api.new_user()
    root = make_package(tmp_path)
    not_executable = tmp_path / "not-executable"
    not_executable.write_text("")
    placeholders = {
        "__TMP__": str(tmp_path),
        "__NOT_EXECUTABLE__": str(not_executable),
        "__NOT_A_FOLDER__": str(not_executable),
    }
    good = {
        "label": "pkg",
        "python_interpreter": sys.executable,
        "package_root": str(root),
        "manifest": manifest(),
    }
    for change in BAD_COLLECT_CHANGES:
        body = dict(good)
        for key, value in change.items():
            body[key] = placeholders.get(value, value) if isinstance(value, str) else value
        response = user.post("/api/v2/task/collect/custom/", json=body)
        assert response.status_code == 422, (change, response.text)
    assert expect(user.get("/api/v2/task/"), 200) == []
    collect(user, good, 201)


def test_collect_custom_sharing_options(api: ApiClient, tmp_path: Path) -> None:
    alice, bob = api.new_user(), api.new_user()
    lab = make_group(api, alice)
    body = {
        "label": "pkg",
        "python_interpreter": sys.executable,
        "package_root": str(make_package(tmp_path)),
        "manifest": manifest(),
    }
    tasks = collect(alice, body, 201, query=f"?user_group_id={lab}")
    group = expect(alice.get(f"/api/v2/task-group/{tasks[0]['taskgroupv2_id']}/"), 200)
    assert group["user_group_id"] == lab
    expect(bob.get(f"/api/v2/task/{tasks[0]['id']}/"), 403)
    collect(bob, {**body, "label": "b"}, 403, query=f"?user_group_id={lab}")
    collect(bob, {**body, "label": "b"}, 404, query="?user_group_id=9999")
    collect(bob, {**body, "label": "b"}, 422, query=f"?private=true&user_group_id={lab}")


# --- Admin: core tasks ------------------------------------------------------------------------


def test_make_core_and_not_core(api: ApiClient) -> None:
    user = api.new_user()
    first = new_task(user, name="a")
    second = new_task(user, name="b")
    ids = [first["id"], second["id"]]
    made = expect(api.admin.post("/admin/v2/task/make-core/", json=ids), 200)
    assert [(task["id"], task["is_core"]) for task in made] == [(ids[0], True), (ids[1], True)]
    assert all(task["is_core"] for task in expect(user.get("/api/v2/task/"), 200))
    unmade = expect(api.admin.post("/admin/v2/task/make-not-core/", json=[ids[0]]), 200)
    assert unmade[0]["is_core"] is False
    assert expect(user.get(f"/api/v2/task/{ids[1]}/"), 200)["is_core"] is True

    expect(user.post("/admin/v2/task/make-core/", json=ids), 403)
    expect(api.admin.post("/admin/v2/task/make-core/", json=[ids[0], 9999]), 404)
    assert expect(user.get(f"/api/v2/task/{ids[0]}/"), 200)["is_core"] is False
    expect(api.admin.post("/admin/v2/task/make-core/", json=[]), 422)
    expect(api.admin.post("/admin/v2/task/make-core/", json={"ids": ids}), 422)
    expect(api.admin.post("/admin/v2/task/make-core/", json=["a"]), 422)
    expect(api.admin.post("/admin/v2/task/make-not-core/", json=[0]), 422)
