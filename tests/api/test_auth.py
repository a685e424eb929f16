"""Login, current user, registration and user administration."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ..support.helpers import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    USER_PASSWORD,
    ApiClient,
    UserClient,
    expect,
    login,
)


def test_alive_needs_no_token(app_client: TestClient) -> None:
    body = expect(app_client.get("/api/alive/"), 200)
    assert body["alive"] is True
    assert body["version"]


def test_login_and_current_user(app_client: TestClient) -> None:
    token = login(app_client, ADMIN_EMAIL, ADMIN_PASSWORD)
    headers = {"Authorization": f"Bearer {token}"}
    me = expect(app_client.get("/auth/current-user/?group_ids_names=true", headers=headers), 200)
    assert me["email"] == ADMIN_EMAIL
    assert me["is_superuser"] is True
    assert [name for _, name in me["group_ids_names"]] == ["All"]


def test_bad_credentials(app_client: TestClient) -> None:
    response = app_client.post(
        "/auth/token/login/", data={"username": ADMIN_EMAIL, "password": "wrong"}
    )
    assert expect(response, 400) == {"detail": "LOGIN_BAD_CREDENTIALS"}
    response = app_client.post("/auth/token/login/", data={"username": ADMIN_EMAIL})
    expect(response, 422)


def test_no_or_bad_token_is_401(app_client: TestClient) -> None:
    assert expect(app_client.get("/auth/current-user/"), 401) == {"detail": "Unauthorized"}
    response = app_client.get("/auth/current-user/", headers={"Authorization": "Bearer junk"})
    expect(response, 401)
    expect(app_client.get("/auth/users/"), 401)
    expect(app_client.post("/auth/register/", json={}), 401)


def test_register_joins_default_group(api: ApiClient) -> None:
    user = api.new_user()
    assert [name for _, name in user.user["group_ids_names"]] == ["All"]
    assert user.user["is_superuser"] is False
    assert user.user["project_dirs"][0].startswith("/")


def test_register_is_for_superusers_only(api: ApiClient) -> None:
    user = api.new_user()
    response = user.post(
        "/auth/register/", json={"email": "x@example.org", "password": "abcd-efgh"}
    )
    expect(response, 403)
    expect(user.get("/auth/users/"), 403)
    expect(user.get(f"/auth/users/{user.id}/"), 403)
    expect(user.patch(f"/auth/users/{user.id}/", json={"is_superuser": True}), 403)


def test_register_validation(api: ApiClient) -> None:
    admin = api.admin
    expect(
        admin.post("/auth/register/", json={"email": "not-an-email", "password": "abcd-efgh"}), 422
    )
    expect(admin.post("/auth/register/", json={"email": "a@example.org"}), 422)
    # Unknown fields are ignored, as Fractal's UserCreate does (a bad known one is not).
    body = {"email": "a@example.org", "password": "abcd-efgh", "slurm_accounts": ["a b"]}
    expect(admin.post("/auth/register/", json=body), 422)
    body = {"email": "a@example.org", "password": "abcd-efgh", "project_dirs": ["relative/dir"]}
    expect(admin.post("/auth/register/", json=body), 422)
    body = {"email": "a@example.org", "password": "x" * 10_000}
    expect(admin.post("/auth/register/", json=body), 422)
    body = {"email": "a@example.org", "password": "abcdefg"}  # one short of the default 8
    assert (
        "at least 8 characters" in expect(admin.post("/auth/register/", json=body), 422)["detail"]
    )
    body = {"email": "a@example.org", "password": "abcd-efgh", "profile_id": 999}
    expect(admin.post("/auth/register/", json=body), 404)
    expect(
        admin.post("/auth/register/", json={"email": "a@example.org", "password": "abcd-efgh"}), 201
    )
    response = admin.post(
        "/auth/register/", json={"email": "A@example.org", "password": "abcd-efgh"}
    )
    assert expect(response, 400)["detail"] == "REGISTER_USER_ALREADY_EXISTS"


def test_admin_patches_user(api: ApiClient) -> None:
    user = api.new_user()
    admin = api.admin
    patched = expect(
        admin.patch(
            f"/auth/users/{user.id}/",
            json={
                "project_dirs": ["/data/a/../b", "/data/c"],
                "slurm_accounts": ["acct1", "acct2"],
            },
        ),
        200,
    )
    assert patched["project_dirs"] == ["/data/b", "/data/c"]
    assert patched["slurm_accounts"] == ["acct1", "acct2"]
    expect(admin.patch(f"/auth/users/{user.id}/", json={"slurm_accounts": ["a", "a"]}), 422)
    expect(admin.patch(f"/auth/users/{user.id}/", json={"is_superuser": "maybe"}), 422)
    expect(admin.patch("/auth/users/9999/", json={}), 404)
    shown = expect(admin.get(f"/auth/users/{user.id}/"), 200)
    assert shown["slurm_accounts"] == ["acct1", "acct2"]
    listed = expect(admin.get("/auth/users/"), 200)
    assert {item["id"] for item in listed} >= {user.id, admin.id}
    # An admin cannot lock themselves out of admin rights.
    expect(admin.patch(f"/auth/users/{admin.id}/", json={"is_superuser": False}), 422)


def test_password_change_and_deactivation(api: ApiClient) -> None:
    user = api.new_user()
    expect(user.patch("/auth/current-user/", json={"password": "new-password"}), 200)
    token = login(api.client, user.user["email"], "new-password")
    user = UserClient(api.client, token, user.user)
    expect(user.patch("/auth/current-user/", json={"is_superuser": True}), 422)
    expect(api.admin.patch(f"/auth/users/{user.id}/", json={"is_active": False}), 200)
    response = api.client.post(
        "/auth/token/login/", data={"username": user.user["email"], "password": "new-password"}
    )
    expect(response, 400)
    expect(user.get("/auth/current-user/"), 401)
    assert USER_PASSWORD != "new-password"


def test_set_groups(api: ApiClient) -> None:
    user = api.new_user()
    admin = api.admin
    group = expect(admin.post("/auth/group/", json={"name": "lab"}), 201)
    result = expect(
        admin.post(f"/auth/users/{user.id}/set-groups/", json={"group_ids": [group["id"]]}), 200
    )
    assert sorted(name for _, name in result["group_ids_names"]) == ["All", "lab"]
    expect(admin.post(f"/auth/users/{user.id}/set-groups/", json={"group_ids": [999]}), 404)
    expect(admin.post(f"/auth/users/{user.id}/set-groups/", json={"group_ids": "x"}), 422)
    result = expect(admin.post(f"/auth/users/{user.id}/set-groups/", json={"group_ids": []}), 200)
    assert [name for _, name in result["group_ids_names"]] == ["All"]
