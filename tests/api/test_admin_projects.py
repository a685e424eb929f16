"""Every user's projects and project links under /admin/v2/ (superusers only)."""

from __future__ import annotations

from typing import Any

from ..support.helpers import ApiClient, UserClient, expect, make_dataset, make_project

PROJECTS = "/admin/v2/project/"
LINKS = "/admin/v2/linkuserproject/"


def _emails_names(page: dict[str, Any]) -> list[tuple[str, str]]:
    return [(item["user_email"], item["name"]) for item in page["items"]]


def _set_dirs(api: ApiClient, user: UserClient, dirs: list[str]) -> None:
    expect(api.admin.patch(f"/auth/users/{user.id}/", json={"project_dirs": dirs}), 200)


def test_list_projects_with_filters_and_pages(api: ApiClient) -> None:
    # The list is ordered by owner e-mail: alice is the one whose e-mail sorts first
    # (user10@ sorts before user9@, and the numbers depend on which tests ran before).
    alice, bob = sorted((api.new_user(), api.new_user()), key=lambda user: user.user["email"])
    a1 = make_project(alice, "beta")
    a2 = make_project(alice, "Alpha 100%")
    b1 = make_project(bob, "alpine")
    admin = api.admin
    page = expect(admin.get(PROJECTS), 200)
    a, b = alice.user["email"], bob.user["email"]
    assert _emails_names(page) == [(a, "Alpha 100%"), (a, "beta"), (b, "alpine")]
    assert (page["current_page"], page["page_size"], page["total_count"]) == (1, 3, 3)
    first = page["items"][0]
    assert first["id"] == a2["id"] and first["description"] is None
    assert first["is_starred"] is False and first["timestamp_created"] == a2["timestamp_created"]
    # A project shared with bob is still listed once, with its owner.
    expect(alice.post(f"/api/v2/project/{a1['id']}/access/", json={"email": b}), 201)
    assert expect(admin.get(PROJECTS), 200)["total_count"] == 3

    def names(**query: Any) -> list[str]:
        return [item["name"] for item in expect(admin.get(PROJECTS, params=query), 200)["items"]]

    assert names(project_id=b1["id"]) == ["alpine"]
    assert names(name="AL") == ["Alpha 100%", "alpine"]
    assert names(name="100%") == ["Alpha 100%"]
    assert names(name="%") == ["Alpha 100%"]  # a literal percent sign, not a wildcard
    assert names(user_email=b) == ["alpine"]
    assert names(user_email="nobody@example.org") == []
    assert names(project_id=999) == []
    second = expect(admin.get(PROJECTS, params={"page": 2, "page_size": 2}), 200)
    assert _emails_names(second) == [(b, "alpine")] and second["total_count"] == 3
    assert expect(admin.get(PROJECTS, params={"page": 9, "page_size": 2}), 200)["items"] == []
    for bad in ({"page": 2}, {"page": 0}, {"page_size": 0}, {"project_id": 0}, {"name": "a\x00"}):
        expect(admin.get(PROJECTS, params=bad), 422)
    expect(alice.get(PROJECTS), 403)
    expect(api.client.get(PROJECTS), 401)


def test_transfer_project_ownership(api: ApiClient) -> None:
    admin = api.admin
    alice, bob, carol = api.new_user(), api.new_user(), api.new_user()
    project = make_project(alice, "shared")
    pid = project["id"]
    dataset = make_dataset(alice, pid)
    url = f"{PROJECTS}{pid}/"
    # bob is a member already: his access gives way to ownership.
    expect(alice.post(f"/api/v2/project/{pid}/access/", json={"email": bob.user["email"]}), 201)
    # The dataset's zarr_dir lies outside bob's project dirs: he could not use it.
    refused = expect(admin.patch(url, params={"user_id": bob.id}), 422)
    assert dataset["zarr_dir"] in refused["detail"]
    _set_dirs(api, bob, [*bob.user["project_dirs"], *alice.user["project_dirs"]])
    # carol owns a project of that name: refused until she renames it.
    make_project(carol, "shared")
    _set_dirs(api, carol, [*carol.user["project_dirs"], *alice.user["project_dirs"]])
    expect(admin.patch(url, params={"user_id": carol.id}), 422)
    expect(admin.patch(url, params={"user_id": alice.id}), 422)  # already the owner
    response = admin.patch(url, params={"user_id": bob.id})
    assert response.status_code == 200 and response.content in (b"", b"null")
    expect(alice.get(f"/api/v2/project/{pid}/"), 403)
    expect(bob.get(f"/api/v2/project/{pid}/dataset/{dataset['id']}/"), 200)
    assert _emails_names(expect(admin.get(PROJECTS, params={"project_id": pid}), 200)) == [
        (bob.user["email"], "shared")
    ]
    links = expect(admin.get(LINKS, params={"project_id": pid}), 200)["items"]
    assert [(link["user_id"], link["is_owner"], link["permissions"]) for link in links] == [
        (bob.id, True, "rwx")
    ]

    # Who cannot own it: nobody, a guest, a user without profile or on another resource.
    expect(admin.patch(url, params={"user_id": 9999}), 404)
    expect(admin.patch(f"{PROJECTS}9999/", params={"user_id": bob.id}), 404)
    guest = api.new_user()
    expect(admin.patch(f"/auth/users/{guest.id}/", json={"is_guest": True}), 200)
    expect(admin.patch(url, params={"user_id": guest.id}), 422)
    no_profile = api.new_user(with_profile=False)
    expect(admin.patch(url, params={"user_id": no_profile.id}), 422)
    elsewhere = api.new_user()
    _set_dirs(api, elsewhere, alice.user["project_dirs"])
    resource = expect(
        admin.post(
            "/admin/v2/resource/",
            json={
                "name": "second",
                "type": "local",
                "jobs_local_dir": str(api.tmp_path / "jobs2"),
                "tasks_local_dir": str(api.tmp_path / "tasks2"),
                "jobs_runner_config": {},
            },
        ),
        201,
    )
    profile = expect(
        admin.post(f"/admin/v2/resource/{resource['id']}/profile/", json={"name": "second"}), 201
    )
    expect(admin.patch(f"/auth/users/{elsewhere.id}/", json={"profile_id": profile["id"]}), 200)
    assert "resources" in expect(admin.patch(url, params={"user_id": elsewhere.id}), 422)["detail"]
    for bad in ({}, {"user_id": 0}, {"user_id": "x"}):
        expect(admin.patch(url, params=bad), 422)
    expect(bob.patch(url, params={"user_id": carol.id}), 403)
    expect(api.client.patch(url, params={"user_id": carol.id}), 401)
    assert expect(bob.get(f"/api/v2/project/{pid}/"), 200)["name"] == "shared"


def test_links_and_verifying_a_guests_invitation(api: ApiClient) -> None:
    admin = api.admin
    owner, member = api.new_user(), api.new_user()
    guest = api.new_user()
    expect(admin.patch(f"/auth/users/{guest.id}/", json={"is_guest": True}), 200)
    project = make_project(owner, "Lab data")
    other = make_project(member, "other")
    pid = project["id"]

    def invite(user: UserClient, permissions: str) -> None:
        expect(
            owner.post(
                f"/api/v2/project/{pid}/guest/",
                params={"email": user.user["email"]},
                json={"permissions": permissions},
            ),
            201,
        )

    invite(guest, "r")
    invite(member, "rw")
    page = expect(admin.get(LINKS), 200)
    assert page["total_count"] == 4
    rows = {(item["user_id"], item["project_id"]): item for item in page["items"]}
    assert rows[(owner.id, pid)] == {
        "user_id": owner.id,
        "user_email": owner.user["email"],
        "project_id": pid,
        "project_name": "Lab data",
        "is_verified": True,
        "is_owner": True,
        "permissions": "rwx",
    }
    assert rows[(guest.id, pid)]["is_verified"] is False

    def pairs(**query: Any) -> list[tuple[int, int]]:
        items = expect(admin.get(LINKS, params=query), 200)["items"]
        return [(item["user_id"], item["project_id"]) for item in items]

    assert sorted(pairs(is_verified=False)) == sorted([(guest.id, pid), (member.id, pid)])
    assert pairs(user_id=member.id, is_owner=True) == [(member.id, other["id"])]
    assert len(pairs(project_id=pid)) == 3
    assert len(pairs(project_name="lab")) == 3 and pairs(project_name="_") == []
    assert len(pairs(page=2, page_size=3)) == 1

    verify = "/admin/v2/linkuserproject/verify/"
    expect(guest.get(f"/api/v2/project/{pid}/"), 403)  # pending: no access yet
    response = admin.post(verify, params={"guest_user_id": guest.id, "project_id": pid})
    assert response.status_code == 200
    assert pairs(user_id=guest.id, is_verified=True) == [(guest.id, pid)]
    expect(guest.get(f"/api/v2/project/{pid}/"), 200)
    # Nothing pending any more, or never invited: 404.
    expect(admin.post(verify, params={"guest_user_id": guest.id, "project_id": pid}), 404)
    expect(admin.post(verify, params={"guest_user_id": guest.id, "project_id": 9999}), 404)
    expect(admin.post(verify, params={"guest_user_id": 9999, "project_id": pid}), 404)
    # A non-guest accepts by themselves; a guest's invitation must be read-only.
    expect(admin.post(verify, params={"guest_user_id": member.id, "project_id": pid}), 422)
    expect(admin.patch(f"/auth/users/{member.id}/", json={"is_guest": True}), 200)
    assert (
        "'rw'"
        in expect(admin.post(verify, params={"guest_user_id": member.id, "project_id": pid}), 422)[
            "detail"
        ]
    )
    for bad in ({}, {"guest_user_id": guest.id}, {"guest_user_id": 0, "project_id": pid}):
        expect(admin.post(verify, params=bad), 422)
    for bad in ({"user_id": 0}, {"is_owner": "maybe"}, {"page": 2}):
        expect(admin.get(LINKS, params=bad), 422)
    expect(owner.get(LINKS), 403)
    expect(owner.post(verify, params={"guest_user_id": guest.id, "project_id": pid}), 403)
    expect(api.client.get(LINKS), 401)
    expect(api.client.post(verify, params={"guest_user_id": guest.id, "project_id": pid}), 401)
