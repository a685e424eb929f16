"""Projects: ownership, sharing with r / rw / rwx, and refusals."""

from __future__ import annotations

from ..support.helpers import ApiClient, expect, make_dataset, make_project


def test_project_crud(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user, "first")
    assert project["name"] == "first" and project["is_starred"] is False
    assert project["timestamp_created"].endswith("+00:00")
    expect(user.post("/api/v2/project/", json={"name": "first"}), 422)
    expect(user.post("/api/v2/project/", json={"name": " "}), 422)
    expect(user.post("/api/v2/project/", json={"name": "x" * 256}), 422)
    expect(user.post("/api/v2/project/", json={"name": ["list"]}), 422)
    expect(user.post("/api/v2/project/", json={"name": "ok", "owner": 1}), 422)

    second = make_project(user, "second")
    listed = expect(user.get("/api/v2/project/"), 200)
    assert [item["name"] for item in listed] == ["first", "second"]
    expect(user.patch(f"/api/v2/project/{second['id']}/", json={"name": "first"}), 422)
    starred = expect(user.patch(f"/api/v2/project/{second['id']}/", json={"is_starred": True}), 200)
    assert starred["is_starred"] is True
    expect(user.patch(f"/api/v2/project/{second['id']}/", json={"name": None}), 422)
    expect(user.delete(f"/api/v2/project/{second['id']}/"), 204)
    expect(user.get(f"/api/v2/project/{second['id']}/"), 404)


def test_other_users_projects(api: ApiClient) -> None:
    owner, other = api.new_user(), api.new_user()
    project = make_project(owner)
    url = f"/api/v2/project/{project['id']}/"
    expect(other.get(url), 403)
    expect(other.patch(url, json={"name": "mine"}), 403)
    expect(other.delete(url), 403)
    expect(other.get(url + "dataset/"), 403)
    assert expect(other.get("/api/v2/project/"), 200) == []
    expect(api.client.get(url), 401)
    expect(other.get("/api/v2/project/999999/"), 404)


def test_user_without_profile_gets_plain_403(api: ApiClient) -> None:
    user = api.new_user(with_profile=False)
    detail = expect(user.get("/api/v2/project/"), 403)["detail"]
    assert "no computing profile" in detail
    # Auth routes still work for them.
    expect(user.get("/auth/current-user/"), 200)


def test_sharing_permissions(api: ApiClient) -> None:
    owner, reader, writer = api.new_user(), api.new_user(), api.new_user()
    project = make_project(owner)
    pid = project["id"]
    access = f"/api/v2/project/{pid}/access/"
    expect(owner.post(access, json={"email": reader.user["email"], "permissions": "r"}), 201)
    shared = expect(
        owner.post(access, json={"email": writer.user["email"], "permissions": "rw"}), 201
    )
    assert {item["email"]: item["permissions"] for item in shared} == {
        owner.user["email"]: "rwx",
        reader.user["email"]: "r",
        writer.user["email"]: "rw",
    }
    expect(owner.post(access, json={"email": reader.user["email"]}), 422)
    expect(owner.post(access, json={"email": "nobody@example.org"}), 404)
    expect(owner.post(access, json={"email": reader.user["email"], "permissions": "x"}), 422)

    # Readers read; only writers change; only the owner shares or deletes.
    expect(reader.get(f"/api/v2/project/{pid}/"), 200)
    expect(reader.patch(f"/api/v2/project/{pid}/", json={"name": "r-name"}), 403)
    expect(reader.post(f"/api/v2/project/{pid}/dataset/", json={"name": "d"}), 403)
    expect(writer.patch(f"/api/v2/project/{pid}/", json={"name": "w-name"}), 200)
    # Each sees their own access (Fractal's GET access/); only the owner lists guests.
    mine = expect(writer.get(access), 200)
    assert mine == {"is_owner": False, "permissions": "rw", "owner_email": owner.user["email"]}
    expect(writer.get(f"/api/v2/project/{pid}/guest/"), 403)
    expect(writer.delete(f"/api/v2/project/{pid}/"), 403)

    # Changing and revoking access.
    expect(owner.patch(f"{access}{reader.id}/", json={"permissions": "rw"}), 200)
    expect(reader.patch(f"/api/v2/project/{pid}/", json={"name": "now-allowed"}), 200)
    expect(owner.patch(f"{access}{owner.id}/", json={"permissions": "r"}), 422)
    expect(reader.delete(f"{access}{reader.id}/"), 204)  # a guest may leave
    expect(reader.get(f"/api/v2/project/{pid}/"), 403)
    expect(writer.delete(f"{access}{owner.id}/"), 403)
    expect(owner.delete(f"{access}{writer.id}/"), 204)
    expect(writer.get(f"/api/v2/project/{pid}/"), 403)


def test_project_delete_removes_its_datasets(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user)
    dataset = make_dataset(user, project["id"])
    expect(user.delete(f"/api/v2/project/{project['id']}/"), 204)
    expect(user.get(f"/api/v2/project/{project['id']}/dataset/{dataset['id']}/"), 404)
