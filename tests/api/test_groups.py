"""Groups under /auth/group/."""

from __future__ import annotations

from ..support.helpers import ApiClient, expect


def test_group_crud_and_membership(api: ApiClient) -> None:
    admin = api.admin
    user = api.new_user()
    group = expect(admin.post("/auth/group/", json={"name": "imaging"}), 201)
    assert group["name"] == "imaging" and group["user_ids"] == []
    expect(admin.post("/auth/group/", json={"name": "imaging"}), 422)
    expect(admin.post("/auth/group/", json={"name": ""}), 422)
    expect(admin.post("/auth/group/", json={"name": "x" * 300}), 422)
    expect(admin.post("/auth/group/", json={"name": "ok", "extra": 1}), 422)

    added = expect(admin.post(f"/auth/group/{group['id']}/add-user/{user.id}/"), 200)
    assert added["user_ids"] == [user.id]
    expect(admin.post(f"/auth/group/{group['id']}/add-user/{user.id}/"), 422)
    expect(admin.post(f"/auth/group/{group['id']}/add-user/9999/"), 404)
    expect(admin.post(f"/auth/group/9999/add-user/{user.id}/"), 404)

    listed = expect(admin.get("/auth/group/"), 200)
    assert [item["name"] for item in listed] == ["All", "imaging"]
    assert listed[0]["user_ids"] is None  # the key is there, as in Fractal
    with_ids = expect(admin.get("/auth/group/?user_ids=true"), 200)
    assert set(with_ids[0]["user_ids"]) == {admin.id, user.id}

    renamed = expect(admin.patch(f"/auth/group/{group['id']}/", json={"name": "img"}), 200)
    assert renamed["name"] == "img"
    removed = expect(admin.post(f"/auth/group/{group['id']}/remove-user/{user.id}/"), 200)
    assert removed["user_ids"] == []
    expect(admin.post(f"/auth/group/{group['id']}/remove-user/{user.id}/"), 422)
    expect(admin.delete(f"/auth/group/{group['id']}/"), 204)
    expect(admin.get(f"/auth/group/{group['id']}/"), 404)


def test_default_group_is_protected(api: ApiClient) -> None:
    admin = api.admin
    default = expect(admin.get("/auth/group/"), 200)[0]
    expect(admin.delete(f"/auth/group/{default['id']}/"), 422)
    expect(admin.patch(f"/auth/group/{default['id']}/", json={"name": "Other"}), 422)
    expect(admin.post(f"/auth/group/{default['id']}/remove-user/{admin.id}/"), 422)


def test_groups_are_for_superusers(api: ApiClient) -> None:
    user = api.new_user(with_profile=False)
    expect(user.get("/auth/group/"), 403)
    expect(user.post("/auth/group/", json={"name": "mine"}), 403)
    expect(api.client.get("/auth/group/"), 401)
