"""Workflow templates as fractal-server 2.26 has them: the list grouped by owner and name with
its filters and `email_list`, `fractal_server_version`, lenient bodies, and
import-from-template with `override_versions`; through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from ..support.helpers import ApiClient, UserClient, expect, make_project, make_task, make_workflow
from ..support.runner_support import COLLECT_URL, collect_body

TEMPLATES = "/api/v2/workflow-template/"


def _template(user: UserClient, workflow_id: int, name: str, version: int, **query: Any) -> dict:
    return expect(
        user.post(
            TEMPLATES,
            params={"workflow_id": workflow_id, **query},
            json={"name": name, "version": version},
        ),
        201,
    )


def _ids(page: dict[str, Any]) -> list[tuple[str, str, list[int]]]:
    return [
        (
            group["user_email"],
            group["template_name"],
            [member["template_version"] for member in group["templates"]],
        )
        for group in page["items"]
    ]


def test_template_list_groups_and_filters(api: ApiClient) -> None:
    alice, bob, stranger = api.new_user(), api.new_user(), api.new_user()
    group = expect(api.admin.post("/auth/group/", json={"name": "template-lab"}), 201)
    for member in (alice, bob):
        expect(api.admin.post(f"/auth/group/{group['id']}/add-user/{member.id}/"), 200)
    a_wf = make_workflow(alice, make_project(alice)["id"], [make_task(alice, "seg")["id"]])
    b_wf = make_workflow(bob, make_project(bob)["id"], [make_task(bob, "seg-b")["id"]])
    alpha1 = _template(alice, a_wf["id"], "Alpha", 1)
    alpha2 = _template(alice, a_wf["id"], "Alpha", 2)
    _template(alice, a_wf["id"], "beta", 1)
    shared = _template(bob, b_wf["id"], "alpha", 7, user_group_id=group["id"])
    _template(bob, b_wf["id"], "private", 1)  # not shared: never seen by alice

    a, b = alice.user["email"], bob.user["email"]
    page = expect(alice.get(TEMPLATES), 200)
    assert _ids(page) == [(a, "Alpha", [2, 1]), (a, "beta", [1]), (b, "alpha", [7])]
    assert page["items"][0]["templates"][0] == {
        "template_id": alpha2["id"],
        "template_version": 2,
    }
    assert (page["total_count"], page["page_size"], page["current_page"]) == (3, 3, 1)
    assert page["email_list"] == sorted([a, b])
    # Bob sees his own first.
    assert _ids(expect(bob.get(TEMPLATES), 200))[0][0] == b

    def listed(**query: Any) -> list[tuple[str, str, list[int]]]:
        return _ids(expect(alice.get(TEMPLATES, params=query), 200))

    assert listed(is_owner=True) == [(a, "Alpha", [2, 1]), (a, "beta", [1])]
    assert listed(user_email=b) == [(b, "alpha", [7])]
    assert listed(name="ALP") == [(a, "Alpha", [2, 1]), (b, "alpha", [7])]
    assert listed(name="%") == []  # a part of the name, not a pattern
    assert listed(version=1) == [(a, "Alpha", [1]), (a, "beta", [1])]
    assert listed(template_id=alpha1["id"]) == [(a, "Alpha", [1])]
    assert listed(template_id=shared["id"], is_owner=True) == []

    second = expect(alice.get(TEMPLATES, params={"page": 2, "page_size": 2}), 200)
    assert _ids(second) == [(b, "alpha", [7])]
    assert (second["total_count"], second["page_size"], second["current_page"]) == (3, 2, 2)
    assert second["email_list"] == sorted([a, b])
    assert listed(version=0) == listed()  # 0 filters nothing, as in Fractal
    bad_queries = ({"page": 2}, {"page_size": 0}, {"page": 0}, {"template_id": 0}, {"version": -1})
    for bad in (*bad_queries, {"is_owner": "x"}, {"version": 2**31}):
        expect(alice.get(TEMPLATES, params=bad), 422)
    expect(api.client.get(TEMPLATES), 401)
    empty = expect(stranger.get(TEMPLATES), 200)
    assert (empty["items"], empty["email_list"], empty["total_count"]) == ([], [], 0)


def test_template_bodies_and_version(api: ApiClient) -> None:
    user, other = api.new_user(), api.new_user()
    pid = make_project(user)["id"]
    workflow = make_workflow(user, pid, [make_task(user, "seg")["id"]])
    url = f"{TEMPLATES}?workflow_id={workflow['id']}"
    # Unknown fields are ignored, as the reference's schemas do.
    created = expect(user.post(url, json={"name": "t", "version": 1, "colour": "red"}), 201)
    assert created["fractal_server_version"] == "2.26.0" and "colour" not in created
    for version in (0, -1, 2**31, "one", None):
        expect(user.post(url, json={"name": "t", "version": version}), 422)
    expect(user.post(url, json={"name": "", "version": 3}), 422)
    shown = expect(user.get(f"{TEMPLATES}{created['id']}/"), 200)
    assert shown["fractal_server_version"] == "2.26.0"

    patched = expect(
        user.patch(f"{TEMPLATES}{created['id']}/", json={"description": "d", "colour": 1}), 200
    )
    assert patched["description"] == "d" and patched["fractal_server_version"] == "2.26.0"
    expect(user.patch(f"{TEMPLATES}{created['id']}/", json={"user_group_id": 0}), 422)
    expect(other.patch(f"{TEMPLATES}{created['id']}/", json={"description": "x"}), 403)
    expect(api.client.patch(f"{TEMPLATES}{created['id']}/", json={}), 401)

    exported = expect(user.get(f"{TEMPLATES}{created['id']}/export/"), 200)
    imported = expect(
        user.post(f"{TEMPLATES}import/", json={**exported, "version": 2, "extra": True}), 201
    )
    assert imported["fractal_server_version"] == "2.26.0" and imported["version"] == 2
    expect(user.post(f"{TEMPLATES}import/", json={**exported, "version": 0}), 422)
    # The workflow inside keeps Fractal's strict schema.
    strict = {**exported, "version": 3, "data": {**exported["data"], "colour": 1}}
    expect(user.post(f"{TEMPLATES}import/", json=strict), 422)
    # Templates of nothing are refused.
    empty = {**exported, "version": 4, "data": {"name": "w", "task_list": []}}
    expect(user.post(f"{TEMPLATES}import/", json=empty), 422)
    bare = expect(user.post(f"/api/v2/project/{pid}/workflow/", json={"name": "bare"}), 201)
    expect(
        user.post(f"{TEMPLATES}?workflow_id={bare['id']}", json={"name": "b", "version": 1}), 422
    )
    # Someone else's workflow.
    expect(other.post(url, json={"name": "mine", "version": 1}), 403)
    expect(api.client.post(url, json={"name": "t", "version": 9}), 401)


def test_import_from_template_with_override_versions(api: ApiClient) -> None:
    user, other = api.new_user(), api.new_user()
    pid = make_project(user)["id"]
    old = {t["name"]: t for t in expect(user.post(COLLECT_URL, json=collect_body()), 201)}
    newer = {**collect_body(), "version": "0.2.0"}
    new = {t["name"]: t for t in expect(user.post(COLLECT_URL, json=newer), 201)}
    tasks = [old["create_images"]["id"], old["measure_intensity"]["id"]]
    workflow = make_workflow(user, pid, tasks)
    template = _template(user, workflow["id"], "pipeline", 1)
    before = expect(user.get(f"{TEMPLATES}{template['id']}/"), 200)["timestamp_last_used"]

    url = f"/api/v2/project/{pid}/workflow/import-from-template/?template_id={template['id']}"
    made = expect(user.post(url, json={"name": "moved", "override_versions": {"1": "0.2.0"}}), 201)
    assert [item["task_id"] for item in made["task_list"]] == [
        old["create_images"]["id"],
        new["measure_intensity"]["id"],
    ]
    assert made["template_id"] == template["id"]
    after = expect(user.get(f"{TEMPLATES}{template['id']}/"), 200)["timestamp_last_used"]
    assert after > before
    # The template itself is unchanged.
    data = expect(user.get(f"{TEMPLATES}{template['id']}/"), 200)["data"]
    assert [item["task"]["version"] for item in data["task_list"]] == ["0.1.0", "0.1.0"]

    plain = expect(user.post(url, json={"name": "as is"}), 201)
    assert [item["task_id"] for item in plain["task_list"]] == tasks

    # A version nobody has: Fractal's [HAS_ERROR_DATA] answer, nothing imported.
    missing = user.post(url, json={"name": "gone", "override_versions": {"0": "9.9.9"}})
    assert missing.status_code == 422 and missing.json()["detail"] == "[HAS_ERROR_DATA]"
    for bad in (
        {"name": "x", "override_versions": {"2": "0.2.0"}},  # no third task
        {"name": "x", "override_versions": {"-1": "0.2.0"}},
        {"name": "x", "override_versions": {"a": "0.2.0"}},
        {"name": "x", "override_versions": {"0": ""}},
        {"name": "x", "override_versions": {"0": "a\u0000"}},
        {"name": "x", "override_versions": ["0.2.0"]},
        {"name": "x", "unknown": 1},  # the reference's schema forbids unknown fields here
    ):
        expect(user.post(url, json=bad), 422)
    names = [w["name"] for w in expect(user.get(f"/api/v2/project/{pid}/workflow/"), 200)]
    assert sorted(names) == ["as is", "moved", "workflow"]

    expect(api.client.post(url, json={"name": "anon"}), 401)
    expect(other.post(url, json={"name": "theirs"}), 403)
    other_pid = make_project(other)["id"]
    foreign = f"/api/v2/project/{other_pid}/workflow/import-from-template/"
    expect(other.post(f"{foreign}?template_id={template['id']}", json={"name": "t"}), 403)
    expect(other.post(f"{foreign}?template_id=0", json={"name": "t"}), 422)
