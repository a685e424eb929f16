"""Admin task-group and task routes (/admin/v2/task-group/, GET /admin/v2/task/): every filter
and page, show, share, lifecycle, core flags, and a real pip reset; superusers only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from fractal_like.config import Settings
from fractal_like.models import TaskGroup

from ..services.test_pixi_collection import archive, config_for, make_pixi, pixi_user, post
from ..services.test_pixi_collection import calls as pixi_calls
from ..services.test_pixi_collection import collect as collect_pixi
from ..support.collection_support import (
    PKG_NAME,
    PKG_VERSION,
    Wheels,
    collect_and_wait,
    collection_user,
    run_collector,
    upload,
    wheels_fixture,  # noqa: F401 (the `wheels` fixture)
)
from ..support.helpers import (
    ApiClient,
    UserClient,
    expect,
    make_project,
    make_task,
    make_workflow,
    run_in_session,
)

BASE = "/admin/v2/task-group/"
SUPERUSER_KEYS = {"user_email", "in_use", "archive_path", "pixi_version", "resource_id"}


def _ids(page: dict[str, Any]) -> list[int]:
    return [item["id"] for item in page["items"]]


def _group_of(task: dict[str, Any]) -> int:
    return task["taskgroupv2_id"]


def _scene(api: ApiClient) -> tuple[UserClient, UserClient, dict[str, dict[str, Any]]]:
    """Alice: a shared group in a workflow and a private one; Bob: a shared one."""
    alice, bob = api.new_user(), api.new_user()
    tasks = {
        "used": make_task(alice, "alpha-used"),
        "private": expect(
            alice.post(
                "/api/v2/task/?private=true",
                json={"name": "alpha-private", "command_parallel": "/bin/true", "version": "2"},
            ),
            201,
        ),
        "bobs": make_task(bob, "beta-bobs", category="Segmentation", authors="Ada Lovelace"),
    }
    project = make_project(alice, "alice project")
    make_workflow(alice, project["id"], [tasks["used"]["id"]], name="alice workflow")
    return alice, bob, tasks


def test_admin_routes_refuse_others(api: ApiClient) -> None:
    alice, _bob, tasks = _scene(api)
    group = _group_of(tasks["used"])
    anonymous = api.client
    routes = [
        ("get", BASE, None),
        ("get", f"{BASE}activity/", None),
        ("get", f"{BASE}{group}/", None),
        ("patch", f"{BASE}{group}/", {}),
        ("post", f"{BASE}{group}/deactivate/", None),
        ("post", f"{BASE}{group}/reactivate/", None),
        ("post", f"{BASE}{group}/delete/", None),
        ("post", f"{BASE}{group}/make-core/", None),
        ("post", f"{BASE}{group}/make-not-core/", None),
        ("post", f"{BASE}{group}/reset/pip/", {}),
        ("post", f"{BASE}{group}/reset/pixi/", {}),
        ("get", "/admin/v2/task/", None),
    ]
    for method, url, body in routes:
        kwargs = {} if body is None else {"json": body}
        expect(getattr(anonymous, method)(url, **kwargs), 401)
        # Even the group's owner is no admin.
        expect(alice.request(method, url, **kwargs), 403)
    shown = expect(alice.get(f"/api/v2/task-group/{group}/"), 200)
    assert shown["active"] is True and all(not task["is_core"] for task in shown["task_list"])


def test_list_show_and_filters(api: ApiClient) -> None:
    alice, bob, tasks = _scene(api)
    used, private, bobs = (_group_of(tasks[name]) for name in ("used", "private", "bobs"))
    admin = api.admin

    page = expect(admin.get(BASE), 200)
    assert _ids(page) == [used, private, bobs]
    assert page["total_count"] == 3 and page["page_size"] == 3 and page["current_page"] == 1
    first = page["items"][0]
    assert set(first) >= SUPERUSER_KEYS
    assert first["user_email"] == alice.user["email"] and first["in_use"] is True
    assert first["pinned_package_versions_post"] == {} and first["resource_id"] is not None
    assert first["task_list"][0]["id"] == tasks["used"]["id"]
    assert page["items"][2]["user_email"] == bob.user["email"]
    assert page["items"][2]["in_use"] is False

    def ids(query: str) -> list[int]:
        return _ids(expect(admin.get(f"{BASE}?{query}"), 200))

    assert ids(f"user_id={alice.id}") == [used, private]
    assert ids(f"task_group_id={bobs}") == [bobs]
    assert ids("private=true") == [private]
    assert ids("private=false") == [used, bobs]
    assert ids("pkg_name=ALPHA") == [used, private]
    assert ids("pkg_name=%25") == []  # a literal %, not a wildcard
    assert ids("origin=other") == [used, private, bobs]
    assert ids("origin=pypi") == []
    assert ids("in_use=true") == [used]
    assert ids("in_use=false") == [private, bobs]
    assert ids("active=false") == []
    assert ids(f"resource_id={first['resource_id']}") == [used, private, bobs]
    assert ids("timestamp_last_used_min=2000-01-01T00:00:00Z") == [used, private, bobs]
    assert ids("timestamp_last_used_max=2000-01-01T00:00:00%2B05:00") == []
    user_group = first["user_group_id"]
    assert ids(f"user_group_id={user_group}") == [used, bobs]
    second = expect(admin.get(f"{BASE}?page=2&page_size=2"), 200)
    assert _ids(second) == [bobs] and second["total_count"] == 3 and second["page_size"] == 2

    for query in (
        f"user_group_id={user_group}&private=true",
        "origin=ftp",
        "in_use=perhaps",
        "user_id=0",
        "page=2",
        "page_size=0",
        "timestamp_last_used_min=2000-01-01T00:00:00",  # no offset
        "timestamp_last_used_min=0001-01-01T00:00:00%2B05:00",  # before year 1 in UTC
    ):
        expect(admin.get(f"{BASE}?{query}"), 422)

    shown = expect(admin.get(f"{BASE}{used}/"), 200)
    assert shown == first
    expect(admin.get(f"{BASE}999999/"), 404)
    expect(admin.get(f"{BASE}0/"), 422)


def test_patch_shares_anyones_group(api: ApiClient) -> None:
    _alice, bob, tasks = _scene(api)
    group = _group_of(tasks["private"])
    admin = api.admin
    lab = expect(admin.post("/auth/group/", json={"name": "lab"}), 201)["id"]
    shared = expect(admin.patch(f"{BASE}{group}/", json={"user_group_id": lab}), 200)
    assert shared["user_group_id"] == lab and set(shared) >= SUPERUSER_KEYS
    # Bob is not in "lab": he still cannot see it.
    expect(bob.get(f"/api/v2/task-group/{group}/"), 403)
    cleared = expect(admin.patch(f"{BASE}{group}/", json={"user_group_id": None}), 200)
    assert cleared["user_group_id"] is None
    expect(admin.patch(f"{BASE}{group}/", json={"user_group_id": 999999}), 404)
    expect(admin.patch(f"{BASE}{group}/", json={"active": False}), 422)  # unknown field
    expect(admin.patch(f"{BASE}{group}/", json={"user_group_id": "lab"}), 422)
    expect(admin.patch(f"{BASE}999999/", json={}), 404)


def test_lifecycle_core_and_activities(api: ApiClient) -> None:
    alice, bob, tasks = _scene(api)
    used, bobs = _group_of(tasks["used"]), _group_of(tasks["bobs"])
    admin = api.admin

    # A group registered by hand changes at once; the activity is its owner's.
    done = expect(admin.post(f"{BASE}{bobs}/deactivate/"), 202)
    assert done["status"] == "OK" and done["action"] == "deactivate"
    assert done["user_id"] == bob.id
    assert expect(bob.get(f"/api/v2/task-group/{bobs}/"), 200)["active"] is False
    expect(admin.post(f"{BASE}{bobs}/deactivate/"), 422)
    again = expect(admin.post(f"{BASE}{bobs}/reactivate/"), 202)
    assert again["status"] == "OK"
    refused = expect(admin.post(f"{BASE}{used}/delete/"), 422)
    assert "still used by 1 workflow(s)" in refused["detail"]
    expect(admin.post(f"{BASE}999999/delete/"), 404)

    # Core flags, for every task of a group; one core task per name, package and version.
    assert expect(admin.post(f"{BASE}{bobs}/make-core/"), 200) is None
    shown = expect(bob.get(f"/api/v2/task/{tasks['bobs']['id']}/"), 200)
    assert shown["is_core"] is True
    expect(admin.post(f"{BASE}{bobs}/make-core/"), 200)  # again: no change
    # Made private, so that Alice may register the same name, package and version.
    expect(admin.patch(f"{BASE}{bobs}/", json={"user_group_id": None}), 200)
    twin = make_task(alice, "beta-bobs")
    refused = expect(admin.post(f"{BASE}{_group_of(twin)}/make-core/"), 422)
    assert f"task {tasks['bobs']['id']}" in refused["detail"]
    assert expect(admin.post(f"{BASE}{bobs}/make-not-core/"), 200) is None
    assert expect(bob.get(f"/api/v2/task/{tasks['bobs']['id']}/"), 200)["is_core"] is False
    expect(admin.post(f"{BASE}{_group_of(twin)}/make-core/"), 200)
    expect(admin.post(f"{BASE}999999/make-core/"), 404)

    # Activities: everyone's, newest first, with the reference's filters.
    page = expect(admin.get(f"{BASE}activity/"), 200)
    assert _ids(page) == [again["id"], done["id"]] and page["total_count"] == 2

    def ids(query: str) -> list[int]:
        return _ids(expect(admin.get(f"{BASE}activity/?{query}"), 200))

    assert ids(f"user_id={bob.id}") == [again["id"], done["id"]]
    assert ids(f"user_id={alice.id}") == []
    assert ids(f"task_group_activity_id={done['id']}") == [done["id"]]
    assert ids(f"taskgroupv2_id={bobs}&action=reactivate") == [again["id"]]
    assert ids("status=OK&pkg_name=BETA") == [again["id"], done["id"]]
    assert ids("status=failed") == []
    assert ids("timestamp_started_min=2999-01-01T00:00:00Z") == []
    assert ids("page=2&page_size=1") == [done["id"]]
    for query in ("status=fine", "action=explode", "page=0", "timestamp_started_min=yesterday"):
        expect(admin.get(f"{BASE}activity/?{query}"), 422)
    # The owner sees them among their own activities.
    assert expect(bob.get(f"/api/v2/task-group/activity/{done['id']}/"), 200)["id"] == done["id"]


def test_admin_task_list(api: ApiClient) -> None:
    alice, bob, tasks = _scene(api)
    admin = api.admin
    page = expect(admin.get("/admin/v2/task/"), 200)
    assert page["total_count"] == 3
    by_id = {item["task"]["id"]: item for item in page["items"]}
    used = by_id[tasks["used"]["id"]]
    assert used["task"]["owner"] == alice.user["email"]
    assert used["task"]["pkg_name"] == "alpha-used" and used["task"]["active"] is True
    assert used["task"]["user_group"] is not None  # the default group's name
    (relation,) = used["relationships"]
    assert relation["workflow_name"] == "alice workflow"
    assert relation["project_name"] == "alice project"
    assert relation["project_users"] == [{"id": alice.id, "email": alice.user["email"]}]
    private = by_id[tasks["private"]["id"]]
    assert private["task"]["user_group"] is None and private["relationships"] == []

    def ids(query: str) -> list[int]:
        return [
            item["task"]["id"]
            for item in expect(admin.get(f"/admin/v2/task/?{query}"), 200)["items"]
        ]

    assert ids(f"owner_id={bob.id}") == [tasks["bobs"]["id"]]
    assert ids("name=ALPHA") == [tasks["used"]["id"], tasks["private"]["id"]]
    assert ids("category=segmentation") == [tasks["bobs"]["id"]]
    assert ids("author=lovelace") == [tasks["bobs"]["id"]]
    assert ids("task_group=beta") == [tasks["bobs"]["id"]]
    assert ids("version=2") == [tasks["private"]["id"]]
    assert ids("private=true") == [tasks["private"]["id"]]
    assert ids(f"id={tasks['used']['id']}") == [tasks["used"]["id"]]
    assert ids("task_type=parallel") == sorted(task["id"] for task in tasks.values())
    assert ids("task_type=compound") == []
    assert ids("core=true") == [] and ids("active=false") == []
    assert ids("modality=HCS") == []
    page = expect(admin.get("/admin/v2/task/?page=2&page_size=2"), 200)
    assert len(page["items"]) == 1 and page["total_count"] == 3
    for query in ("task_type=magic", "core=perhaps", "owner_id=-1", "page=3", "name="):
        expect(admin.get(f"/admin/v2/task/?{query}"), 422)


def test_reset_pip_rebuilds_from_the_package(
    api: ApiClient, settings: Settings, wheels: Wheels
) -> None:
    user, root = collection_user(api, wheels)
    admin = api.admin
    activity = collect_and_wait(settings, user, upload(user, wheels.tasks))
    assert activity["status"] == "OK", activity["log"]
    group_id = activity["taskgroupv2_id"]
    folder = root / str(user.id) / PKG_NAME / PKG_VERSION
    url = f"{BASE}{group_id}/reset/pip/"

    refused = expect(admin.post(url, json={}), 422)
    assert "deactivate it" in refused["detail"]  # an active group is never reset
    pixi = expect(admin.post(f"{BASE}{group_id}/reset/pixi/", json={}), 422)
    assert "expected pixi" in pixi["detail"]

    deactivated = expect(admin.post(f"{BASE}{group_id}/deactivate/"), 202)
    assert deactivated["status"] == "pending" and deactivated["user_id"] == user.id
    run_collector(settings, [deactivated["id"]])
    assert not (folder / "venv").exists()

    for body in (
        {"pinned_package_versions_pre": {"fl-pin-helper": "1.0"}},  # JSON text, not an object
        {"pinned_package_versions_pre": "not json"},
        {"pinned_package_versions_post": '{"fl-pin-after": "> 1"}'},
        {"pip_extras": "a b"},
        {"python_version": "2.7"},
        {"python_version": "3.15"},  # a valid value, but not on this resource
        {"use_pixi_lockfile": True},  # unknown here
    ):
        expect(admin.post(url, json=body), 422)
    expect(admin.post(f"{BASE}999999/reset/pip/", json={}), 404)

    reset = expect(
        admin.post(
            url,
            json={
                "pinned_package_versions_pre": json.dumps({"fl-pin-helper": "1.0"}),
                "pinned_package_versions_post": json.dumps({"fl_pin_after": "1.0"}),
                "pip_extras": "",
            },
        ),
        202,
    )
    assert reset["action"] == "reset" and reset["status"] == "pending"
    assert reset["user_id"] == user.id  # the owner's activity, as in Fractal
    busy = expect(admin.post(url, json={}), 422)
    assert "busy" in busy["detail"]
    run_collector(settings, [reset["id"]])
    done = expect(user.get(f"/api/v2/task-group/activity/{reset['id']}/"), 200)
    assert done["status"] == "OK", done["log"]
    group = expect(admin.get(f"{BASE}{group_id}/"), 200)
    # From the wheel kept in the group's folder, not from the recorded pip freeze.
    assert f"installing {group['wheel_path']}" in done["log"]
    assert group["active"] is True
    assert group["pinned_package_versions_pre"] == {"fl-pin-helper": "1.0"}
    assert group["pinned_package_versions_post"] == {"fl-pin-after": "1.0"}
    assert "fl-pin-helper==1.0" in group["pip_freeze"]
    check = subprocess.run(
        [str(folder / "venv" / "bin" / "python"), "-c", "import fl_test_tasks, fl_pin_after"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    listed = expect(admin.get(f"{BASE}activity/?taskgroupv2_id={group_id}&action=reset"), 200)
    assert _ids(listed) == [reset["id"]]


def test_reset_pixi_checks(api: ApiClient, db_url: str) -> None:
    alice = api.new_user()
    task = make_task(alice, "pixi-like")
    group_id = _group_of(task)
    url = f"{BASE}{group_id}/reset/pixi/"
    refused = expect(api.admin.post(url, json={}), 422)
    assert "expected pixi" in refused["detail"]

    async def make_pixi(session: Any, active: bool) -> None:
        group = await session.get(TaskGroup, group_id)
        group.origin, group.pixi_version, group.active = "pixi", "0.54.1", active
        await session.commit()

    run_in_session(db_url, lambda session: make_pixi(session, True))
    assert "deactivate it" in expect(api.admin.post(url, json={}), 422)["detail"]
    run_in_session(db_url, lambda session: make_pixi(session, False))
    # This resource offers no pixi at all.
    expect(api.admin.post(url, json={"use_pixi_lockfile": True}), 422)
    expect(api.admin.post(url, json={"use_pixi_lockfile": "sometimes"}), 422)
    expect(api.admin.post(url, json={"pip_extras": "x"}), 422)  # a pip override
    expect(api.admin.post(f"{BASE}999999/reset/pixi/", json={}), 404)


def test_reset_pixi_rebuilds_from_the_archive(
    api: ApiClient, settings: Settings, tmp_path: Path
) -> None:
    # The pixi collection's stand-in pixi (no real pixi can be installed here).
    home = make_pixi(tmp_path / "pixi")
    user, _resource = pixi_user(api, config_for(home))
    done = collect_pixi(settings, user, post(user, archive(), "fl_test_tasks-0.1.0.tar.gz"))
    assert done["status"] == "OK", done["log"]
    group_id = done["taskgroupv2_id"]
    url = f"{BASE}{group_id}/reset/pixi/"
    assert "deactivate it" in expect(api.admin.post(url, json={}), 422)["detail"]
    assert (
        "expected pip"
        in expect(api.admin.post(f"{BASE}{group_id}/reset/pip/", json={}), 422)["detail"]
    )
    deactivated = expect(api.admin.post(f"{BASE}{group_id}/deactivate/"), 202)
    run_collector(settings, [deactivated["id"]])
    assert expect(api.admin.get(f"{BASE}{group_id}/"), 200)["active"] is False
    installs = len([call for call in pixi_calls(home) if call["argv"][0] == "install"])

    reset = expect(api.admin.post(url, json={"use_pixi_lockfile": False}), 202)
    assert reset["action"] == "reset" and reset["user_id"] == user.id
    run_collector(settings, [reset["id"]])
    ended = expect(user.get(f"/api/v2/task-group/activity/{reset['id']}/"), 200)
    assert ended["status"] == "OK", ended["log"]
    again = [call for call in pixi_calls(home) if call["argv"][0] == "install"]
    assert len(again) == installs + 1 and "--frozen" not in again[-1]["argv"]
    group = expect(api.admin.get(f"{BASE}{group_id}/"), 200)
    assert group["active"] is True and group["origin"] == "pixi"
