"""Fractal's project sharing: invitations and guests, one's own access, stars, latest-job and
the viewer paths of shared projects; on SQLite and PostgreSQL, through HTTP."""

from __future__ import annotations

from fractal_like.config import Settings

from ..support.helpers import (
    ApiClient,
    UserClient,
    expect,
    make_dataset,
    make_project,
    make_workflow,
)
from ..support.runner_support import build_workflow, collect_test_tasks, run_until_final, submit


def _guest_url(project_id: int) -> str:
    return f"/api/v2/project/{project_id}/guest/"


def _invite(owner: UserClient, project_id: int, user: UserClient, permissions: str) -> None:
    params = {"email": user.user["email"]}
    expect(
        owner.post(_guest_url(project_id), params=params, json={"permissions": permissions}), 201
    )


def test_invitation_accept_change_leave(api: ApiClient) -> None:
    owner, bob, carol, stranger = (api.new_user() for _ in range(4))
    project = make_project(owner, "shared")
    pid = project["id"]
    guests, access = _guest_url(pid), f"/api/v2/project/{pid}/access/"
    bob_email = {"email": bob.user["email"]}

    expect(owner.post(guests, params=bob_email, json={"permissions": "rw"}), 201)
    # Bad invitations: 422 for a bad body or e-mail, 404 for nobody, 422 when already linked.
    expect(owner.post(guests, params=bob_email, json={"permissions": "r"}), 422)
    expect(
        owner.post(guests, params={"email": "nobody@example.org"}, json={"permissions": "r"}), 404
    )
    expect(owner.post(guests, params={"email": "not-an-email"}, json={"permissions": "r"}), 422)
    expect(
        owner.post(guests, params={"email": carol.user["email"]}, json={"permissions": "x"}), 422
    )
    expect(owner.post(guests, params={"email": carol.user["email"]}, json={}), 422)
    expect(owner.post(guests, json={"permissions": "r"}), 422)
    # Fields the reference's schema does not know are ignored.
    carol_email = {"email": carol.user["email"]}
    expect(owner.post(guests, params=carol_email, json={"permissions": "r", "note": 1}), 201)

    # A pending invitation gives no access at all.
    invitations = expect(bob.get("/api/v2/project/invitation/"), 200)
    assert invitations == [
        {
            "project_id": pid,
            "project_name": "shared",
            "owner_email": owner.user["email"],
            "guest_permissions": "rw",
        }
    ]
    expect(bob.get(f"/api/v2/project/{pid}/"), 403)
    expect(bob.get(access), 404)
    expect(bob.get(f"/api/v2/project/{pid}/dataset/"), 403)
    assert expect(bob.get("/api/v2/project/", params={"is_owner": False}), 200) == []
    listed = expect(owner.get(guests), 200)
    assert listed == [
        {"email": bob.user["email"], "is_verified": False, "permissions": "rw"},
        {"email": carol.user["email"], "is_verified": False, "permissions": "r"},
    ]

    # Accepting: then bob reads and writes as invited.
    expect(bob.post(f"{access}accept/"), 200)
    expect(bob.post(f"{access}accept/"), 404)
    assert expect(bob.get("/api/v2/project/invitation/"), 200) == []
    expect(bob.get(f"/api/v2/project/{pid}/"), 200)
    assert expect(bob.get(access), 200) == {
        "is_owner": False,
        "permissions": "rw",
        "owner_email": owner.user["email"],
    }
    assert expect(owner.get(access), 200) == {
        "is_owner": True,
        "permissions": "rwx",
        "owner_email": owner.user["email"],
    }
    shared = expect(bob.get("/api/v2/project/", params={"is_owner": False}), 200)
    assert [item["id"] for item in shared] == [pid]
    assert expect(bob.get("/api/v2/project/"), 200) == []  # is_owner defaults to true
    assert [item["id"] for item in expect(owner.get("/api/v2/project/"), 200)] == [pid]
    expect(owner.get("/api/v2/project/", params={"is_owner": "maybe"}), 422)
    expect(bob.patch(f"/api/v2/project/{pid}/", json={"description": "by bob"}), 200)

    # Only the owner manages guests; the owner's own link is not theirs to change.
    expect(bob.get(guests), 403)
    expect(bob.post(guests, params=carol_email, json={"permissions": "rwx"}), 403)
    expect(bob.patch(guests, params=carol_email, json={"permissions": "rwx"}), 403)
    expect(bob.delete(guests, params=carol_email), 403)
    expect(
        owner.patch(guests, params={"email": owner.user["email"]}, json={"permissions": "r"}), 422
    )
    expect(owner.delete(guests, params={"email": owner.user["email"]}), 422)
    expect(
        owner.patch(guests, params={"email": stranger.user["email"]}, json={"permissions": "r"}),
        404,
    )
    expect(
        owner.patch(guests, params={"email": "nobody@example.org"}, json={"permissions": "r"}), 404
    )
    expect(owner.patch(guests, params=bob_email, json={"permissions": "w"}), 422)
    expect(owner.patch(guests, params=bob_email, json={"permissions": "r"}), 200)
    expect(bob.patch(f"/api/v2/project/{pid}/", json={"description": "again"}), 403)
    assert expect(bob.get(access), 200)["permissions"] == "r"

    # Strangers learn nothing; anonymous callers are refused.
    expect(stranger.get(access), 404)
    expect(stranger.post(f"{access}accept/"), 404)
    expect(stranger.delete(access), 404)
    expect(stranger.get(guests), 403)
    for method, url in (
        ("GET", guests),
        ("POST", guests),
        ("PATCH", guests),
        ("DELETE", guests),
        ("GET", access),
        ("POST", f"{access}accept/"),
        ("DELETE", access),
        ("GET", "/api/v2/project/invitation/"),
    ):
        expect(api.client.request(method, url, params=bob_email), 401)
    expect(owner.get("/api/v2/project/2147483648/access/"), 422)
    expect(owner.get("/api/v2/project/999999/access/"), 404)

    # Leaving (bob) and declining (carol); the owner cannot leave their own project.
    expect(bob.delete(access), 204)
    expect(bob.get(f"/api/v2/project/{pid}/"), 403)
    expect(bob.delete(access), 404)
    expect(carol.delete(access), 204)
    assert expect(carol.get("/api/v2/project/invitation/"), 200) == []
    expect(owner.delete(access), 422)
    assert expect(owner.get(guests), 200) == []

    # Removing a guest.
    _invite(owner, pid, stranger, "r")
    expect(stranger.post(f"{access}accept/"), 200)
    expect(owner.delete(guests, params={"email": stranger.user["email"]}), 204)
    expect(owner.delete(guests, params={"email": stranger.user["email"]}), 404)
    expect(stranger.get(f"/api/v2/project/{pid}/"), 403)


def test_stars(api: ApiClient) -> None:
    owner, reader, stranger = api.new_user(), api.new_user(), api.new_user()
    project = make_project(owner)
    pid = project["id"]
    dataset = make_dataset(owner, pid)
    workflow = make_workflow(owner, pid, [])
    _invite(owner, pid, reader, "r")
    expect(reader.post(f"/api/v2/project/{pid}/access/accept/"), 200)

    # A project's star is personal: the reader's own view is unchanged.
    assert expect(owner.post(f"/api/v2/project/{pid}/star/"), 200) is None
    assert expect(owner.get(f"/api/v2/project/{pid}/"), 200)["is_starred"] is True
    assert expect(reader.get(f"/api/v2/project/{pid}/"), 200)["is_starred"] is False
    expect(reader.post(f"/api/v2/project/{pid}/star/"), 200)
    expect(owner.post(f"/api/v2/project/{pid}/unstar/"), 200)
    assert expect(owner.get(f"/api/v2/project/{pid}/"), 200)["is_starred"] is False
    assert expect(reader.get(f"/api/v2/project/{pid}/"), 200)["is_starred"] is True
    expect(stranger.post(f"/api/v2/project/{pid}/star/"), 403)
    expect(owner.post("/api/v2/project/999999/star/"), 404)
    expect(owner.post("/api/v2/project/0/unstar/"), 422)
    expect(api.client.post(f"/api/v2/project/{pid}/star/"), 401)

    # Datasets' and workflows' stars are shared flags: writing them needs write access.
    for kind, obj in (("dataset", dataset), ("workflow", workflow)):
        url = f"/api/v2/project/{pid}/{kind}/{obj['id']}/"
        expect(owner.post(f"{url}star/"), 200)
        assert expect(reader.get(url), 200)["is_starred"] is True
        expect(reader.post(f"{url}unstar/"), 403)
        expect(stranger.post(f"{url}unstar/"), 403)
        expect(api.client.post(f"{url}unstar/"), 401)
        expect(owner.post(f"{url}unstar/"), 200)
        assert expect(owner.get(url), 200)["is_starred"] is False
        expect(owner.post(f"/api/v2/project/{pid}/{kind}/999999/star/"), 404)
        expect(owner.post(f"/api/v2/project/{pid}/{kind}/2147483648/star/"), 422)
    # A dataset of another project is not reached through this one.
    other_project = make_project(owner, "other")
    expect(owner.post(f"/api/v2/project/{other_project['id']}/dataset/{dataset['id']}/star/"), 422)


def test_latest_job_of_a_real_run(api: ApiClient, settings: Settings) -> None:
    owner, reader, stranger = api.new_user(), api.new_user(), api.new_user()
    tasks = collect_test_tasks(owner)
    project = make_project(owner)
    pid = project["id"]
    dataset = make_dataset(owner, pid)
    workflow = build_workflow(
        owner,
        pid,
        [
            (tasks["create_images"], {"args_non_parallel": {"num_images": 2}}),
            (tasks["measure_intensity"], {}),
        ],
    )
    wftask_ids = [
        item["id"]
        for item in expect(owner.get(f"/api/v2/project/{pid}/workflow/{workflow['id']}/"), 200)[
            "task_list"
        ]
    ]
    url = f"/api/v2/project/{pid}/latest-job/"
    query = {"workflow_id": workflow["id"], "dataset_id": dataset["id"]}
    expect(owner.get(url, params=query), 404)  # no job yet

    job = submit(owner, pid, workflow["id"], dataset["id"])
    waiting = expect(owner.get(url, params=query), 200)
    assert waiting["id"] == job["id"] and waiting["status"] == "submitted"
    # Tasks the job has not run yet: their status only, as Fractal's TaskStatusSimple.
    assert waiting["task_statuses"] == {str(i): {"status": "submitted"} for i in wftask_ids}

    assert run_until_final(settings, [job["id"]]) == {job["id"]: "done"}
    latest = expect(owner.get(url, params=query), 200)
    assert latest["id"] == job["id"] and latest["status"] == "done"
    assert latest["user_email"] == owner.user["email"]
    measured = latest["task_statuses"][str(wftask_ids[1])]
    assert measured["status"] == "done" and measured["num_done_images"] == 2
    assert latest["task_statuses"][str(wftask_ids[0])]["status"] == "done"

    # Readers of the project read it; others do not; bad queries are 422.
    _invite(owner, pid, reader, "r")
    expect(reader.get(url, params=query), 403)  # not accepted yet
    expect(reader.post(f"/api/v2/project/{pid}/access/accept/"), 200)
    assert expect(reader.get(url, params=query), 200)["id"] == job["id"]
    expect(stranger.get(url, params=query), 403)
    expect(api.client.get(url, params=query), 401)
    expect(owner.get(url, params={"workflow_id": workflow["id"]}), 422)
    expect(owner.get(url, params={**query, "dataset_id": 0}), 422)
    other = make_project(owner, "elsewhere")
    other_dataset = make_dataset(owner, other["id"])
    expect(owner.get(url, params={**query, "dataset_id": other_dataset["id"]}), 422)
    expect(owner.get(url, params={**query, "workflow_id": 999999}), 404)


def test_viewer_paths_cover_accepted_projects(api: ApiClient) -> None:
    owner, bob = api.new_user(), api.new_user()
    mine = make_dataset(bob, make_project(bob, "bobs")["id"])
    project = make_project(owner)
    shared = make_dataset(owner, project["id"], "shared-data")
    _invite(owner, project["id"], bob, "r")
    url = "/auth/current-user/allowed-viewer-paths/"

    paths = expect(bob.get(url), 200)
    assert paths[: len(bob.user["project_dirs"])] == bob.user["project_dirs"]
    assert mine["zarr_dir"] in paths and shared["zarr_dir"] not in paths  # invitation pending
    expect(bob.post(f"/api/v2/project/{project['id']}/access/accept/"), 200)
    assert shared["zarr_dir"] in expect(bob.get(url), 200)
    only_dirs = expect(bob.get(url, params={"include_shared_projects": False}), 200)
    assert only_dirs == bob.user["project_dirs"]
    expect(bob.get(url, params={"include_shared_projects": "perhaps"}), 422)
    expect(api.client.get(url), 401)
