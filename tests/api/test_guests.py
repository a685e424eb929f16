"""Guest accounts (is_guest) and the user routes of Fractal 2.26: who is a guest, what a guest
may still do (read what is shared with them), and the current user's and admins' new
parameters; on SQLite and PostgreSQL, through HTTP."""

from __future__ import annotations

from typing import Any

from fractal_like.api.users import GUEST_READ_POSTS, GUEST_REFUSED_GETS

from ..support.helpers import (
    ApiClient,
    UserClient,
    expect,
    make_dataset,
    make_project,
    make_task,
    make_workflow,
)

GUEST_REFUSED = "This feature is not available for guest users."


def _guest_with_shared_project(api: ApiClient) -> tuple[UserClient, UserClient, dict[str, Any]]:
    """owner's project with a dataset, a workflow and a job, accepted by a user whom the admin
    then makes a guest account (guests cannot accept invitations themselves)."""
    owner, guest = api.new_user(), api.new_user()
    project = make_project(owner)
    pid = project["id"]
    dataset = make_dataset(owner, pid)
    task = make_task(owner, "measure")
    workflow = make_workflow(owner, pid, [task["id"]])
    job = expect(
        owner.post(
            f"/api/v2/project/{pid}/job/submit/",
            params={"workflow_id": workflow["id"], "dataset_id": dataset["id"]},
            json={},
        ),
        202,
    )
    expect(
        owner.post(
            f"/api/v2/project/{pid}/guest/",
            params={"email": guest.user["email"]},
            json={"permissions": "r"},
        ),
        201,
    )
    expect(guest.post(f"/api/v2/project/{pid}/access/accept/"), 200)
    made = expect(api.admin.patch(f"/auth/users/{guest.id}/", json={"is_guest": True}), 200)
    assert made["is_guest"] is True
    ids = {
        "pid": pid,
        "dataset": dataset["id"],
        "workflow": workflow["id"],
        "wftask": workflow["task_list"][0]["id"],
        "task": task["id"],
        "job": job["id"],
    }
    return owner, guest, ids


def test_is_guest_on_every_user_read(api: ApiClient) -> None:
    admin = api.admin
    plain = api.new_user()
    assert plain.user["is_guest"] is False
    body = {"email": "visitor@example.org", "password": "visitor-password", "is_guest": True}
    guest = expect(admin.post("/auth/register/", json=body), 201)
    assert guest["is_guest"] is True
    assert expect(admin.get(f"/auth/users/{guest['id']}/"), 200)["is_guest"] is True
    listed = {item["id"]: item["is_guest"] for item in expect(admin.get("/auth/users/"), 200)}
    assert listed[guest["id"]] is True and listed[plain.id] is False
    groups = expect(admin.get("/auth/group/"), 200)
    moved = expect(
        admin.post(f"/auth/users/{guest['id']}/set-groups/", json={"group_ids": [groups[0]["id"]]}),
        200,
    )
    assert moved["is_guest"] is True
    back = expect(admin.patch(f"/auth/users/{guest['id']}/", json={"is_guest": False}), 200)
    assert back["is_guest"] is False

    # A superuser is never a guest, whichever of the two is asked for.
    both = {**body, "email": "both@example.org", "is_superuser": True}
    assert "guest" in str(expect(admin.post("/auth/register/", json=both), 422)["detail"])
    expect(admin.patch(f"/auth/users/{guest['id']}/", json={"is_guest": True}), 200)
    expect(admin.patch(f"/auth/users/{guest['id']}/", json={"is_superuser": True}), 422)
    expect(
        admin.patch(f"/auth/users/{plain.id}/", json={"is_guest": True, "is_superuser": True}), 422
    )
    expect(admin.patch(f"/auth/users/{admin.id}/", json={"is_guest": True}), 422)
    expect(admin.patch(f"/auth/users/{plain.id}/", json={"is_guest": None}), 422)
    expect(admin.patch(f"/auth/users/{plain.id}/", json={"is_guest": "sometimes"}), 422)
    # Only admins make guests.
    expect(plain.patch(f"/auth/users/{plain.id}/", json={"is_guest": True}), 403)
    expect(plain.patch("/auth/current-user/", json={"is_guest": True}), 422)
    expect(api.client.patch(f"/auth/users/{plain.id}/", json={"is_guest": True}), 401)
    # Register ignores the fields its schema does not know (Fractal's UserCreate does).
    extra = {"email": "extra@example.org", "password": "extra-password", "favourite": "blue"}
    assert "favourite" not in expect(admin.post("/auth/register/", json=extra), 201)


def test_guest_reads_what_is_shared_and_writes_nothing(api: ApiClient) -> None:
    owner, guest, ids = _guest_with_shared_project(api)
    pid = ids["pid"]
    project = f"/api/v2/project/{pid}"
    dataset = f"{project}/dataset/{ids['dataset']}"
    workflow = f"{project}/workflow/{ids['workflow']}"
    job = f"{project}/job/{ids['job']}"

    # Reads, including the queries that are POSTs.
    for url in (
        "/auth/current-user/",
        "/auth/current-user/allowed-viewer-paths/",
        "/api/v2/project/?is_owner=false",
        f"{project}/",
        f"{project}/access/",
        f"{dataset}/",
        f"{workflow}/",
        f"{job}/",
        f"{project}/job/",
        f"/api/v2/task/{ids['task']}/",
        "/api/v2/task-group/",
    ):
        expect(guest.get(url), 200)
    assert [p["id"] for p in expect(guest.get("/api/v2/project/?is_owner=false"), 200)] == [pid]
    assert expect(guest.get(f"{project}/access/"), 200)["permissions"] == "r"
    expect(guest.post(f"{dataset}/images/query/", json={}), 200)
    status_query = {"dataset_id": ids["dataset"], "workflowtask_id": ids["wftask"]}
    expect(guest.post(f"{project}/status/images/", params=status_query, json={}), 200)
    for query_post in ("verify-unique-types", "non-processed"):
        params = {"workflowtask_id": ids["wftask"]} if query_post == "non-processed" else {}
        response = guest.post(f"{dataset}/images/{query_post}/", params=params, json={})
        assert response.status_code not in (401, 403, 500), response.text
    download = guest.get(f"{job}/download/")
    assert download.status_code == 200 and download.content.startswith(b"PK")  # a zip
    # Guest accounts have no invitations to accept (Fractal shows them none).
    assert expect(guest.get("/api/v2/project/invitation/"), 200) == []

    # Every write is refused with Fractal's words, wherever it is.
    refused: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/v2/project/", {"json": {"name": "mine"}}),
        ("PATCH", f"{project}/", {"json": {"name": "renamed"}}),
        ("DELETE", f"{project}/", {}),
        ("POST", f"{project}/star/", {}),
        ("POST", f"{project}/unstar/", {}),
        ("POST", f"{project}/access/accept/", {}),
        ("DELETE", f"{project}/access/", {}),
        ("POST", f"{project}/dataset/", {"json": {"name": "d"}}),
        ("PATCH", f"{dataset}/", {"json": {"name": "d2"}}),
        ("POST", f"{dataset}/star/", {}),
        ("POST", f"{project}/workflow/", {"json": {"name": "w"}}),
        ("POST", f"{workflow}/star/", {}),
        ("POST", f"{workflow}/wftask/", {"json": [{"task_id": ids["task"]}]}),
        (
            "POST",
            f"{project}/job/submit/",
            {"params": {"workflow_id": ids["workflow"], "dataset_id": ids["dataset"]}, "json": {}},
        ),
        ("GET", f"{job}/stop/", {}),
        ("POST", "/api/v2/task/", {"json": {"name": "t", "command_parallel": "/bin/true"}}),
        ("POST", "/api/v2/task/collect/pip/", {"data": {"package": "some-package"}}),
        (
            "POST",
            "/api/v2/workflow-template/",
            {"params": {"workflow_id": ids["workflow"]}, "json": {"name": "t", "version": 1}},
        ),
        ("PATCH", "/auth/current-user/", {"json": {"slurm_accounts": ["lab"]}}),
    ]
    for method, url, kwargs in refused:
        response = guest.request(method, url, **kwargs)
        assert response.status_code == 403, f"{method} {url}: {response.text}"
        assert response.json()["detail"] == GUEST_REFUSED
    # Nothing changed: the owner still sees one project, one dataset, one workflow, a job.
    assert [p["id"] for p in expect(owner.get("/api/v2/project/"), 200)] == [pid]
    assert len(expect(owner.get(f"{project}/dataset/"), 200)) == 1
    assert len(expect(owner.get(f"{project}/workflow/"), 200)) == 1
    assert expect(owner.get(f"{job}/"), 200)["status"] == "submitted"
    assert expect(owner.get(f"{project}/"), 200)["name"] != "renamed"

    # Logging out stays possible; an admin turning the guest back lifts the refusals.
    expect(guest.post("/auth/token/logout/"), 200)
    expect(api.admin.patch(f"/auth/users/{guest.id}/", json={"is_guest": False}), 200)
    expect(guest.post(f"{project}/star/"), 200)


def test_current_user_slurm_accounts(api: ApiClient) -> None:
    user = api.new_user()
    patched = expect(
        user.patch("/auth/current-user/", json={"slurm_accounts": ["lab-1", "lab.2_x"]}), 200
    )
    assert patched["slurm_accounts"] == ["lab-1", "lab.2_x"]
    assert expect(user.get("/auth/current-user/"), 200)["slurm_accounts"] == ["lab-1", "lab.2_x"]
    for bad in (["a b"], ["a;rm"], [""], ["a", "a"], None, "lab"):
        response = user.patch("/auth/current-user/", json={"slurm_accounts": bad})
        assert response.status_code == 422 and "slurm_accounts" in response.text, response.text
    # Unknown fields and what only admins change are refused (additionalProperties: false).
    for body in ({"profile_id": 1}, {"project_dirs": ["/x"]}, {"colour": "red"}):
        expect(user.patch("/auth/current-user/", json=body), 422)
    expect(user.patch("/auth/current-user/", json={}), 200)
    expect(api.client.patch("/auth/current-user/", json={"slurm_accounts": ["x"]}), 401)
    # The accounts are the user's to submit with.
    assert expect(user.get("/auth/current-user/"), 200)["slurm_accounts"] == ["lab-1", "lab.2_x"]


def test_group_ids_names_and_profile_filter(api: ApiClient) -> None:
    admin = api.admin
    user = api.new_user()
    unprofiled = api.new_user(with_profile=False)
    assert expect(user.get("/auth/current-user/"), 200)["group_ids_names"] is None
    mine = expect(user.get("/auth/current-user/", params={"group_ids_names": True}), 200)
    assert [name for _, name in mine["group_ids_names"]] == ["All"]
    expect(user.get("/auth/current-user/", params={"group_ids_names": "lots"}), 422)

    shown = expect(admin.get(f"/auth/users/{user.id}/"), 200)  # true by default for admins
    assert [name for _, name in shown["group_ids_names"]] == ["All"]
    bare = expect(admin.get(f"/auth/users/{user.id}/", params={"group_ids_names": False}), 200)
    assert bare["group_ids_names"] is None and bare["email"] == user.user["email"]
    expect(user.get(f"/auth/users/{user.id}/", params={"group_ids_names": False}), 403)

    profile_id = user.user["profile_id"]
    listed = expect(admin.get("/auth/users/", params={"profile_id": profile_id}), 200)
    ids = {item["id"] for item in listed}
    assert user.id in ids and unprofiled.id not in ids
    assert all(item["profile_id"] == profile_id for item in listed)
    assert expect(admin.get("/auth/users/", params={"profile_id": 999999}), 200) == []
    expect(admin.get("/auth/users/", params={"profile_id": 0}), 422)
    expect(user.get("/auth/users/", params={"profile_id": profile_id}), 403)
    expect(api.client.get("/auth/users/"), 401)


def test_guest_exceptions_name_real_routes(api: ApiClient) -> None:
    """The guard's lists of exceptions name routes that exist, with that method (a renamed
    route would otherwise silently turn a guest's allowed query into a 403, or let a guest
    stop jobs)."""
    paths = expect(api.client.get("/openapi.json"), 200)["paths"]
    missing = [f"POST {path}" for path in GUEST_READ_POSTS if "post" not in paths.get(path, {})]
    missing += [f"GET {path}" for path in GUEST_REFUSED_GETS if "get" not in paths.get(path, {})]
    assert missing == []
