"""The auth cookie (the Fractal web page's way in), logout, /api/settings/* and profile-info."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from fastapi_users.jwt import generate_jwt
from sqlalchemy.engine import make_url

from fractal_like.api.app import create_app
from fractal_like.api.users import PASSWORD_CLAIM, password_fingerprint
from fractal_like.config import Settings
from fractal_like.models import UserOAuth
from fractal_like.services.settings_view import MASK, database_settings

from ..support.helpers import USER_PASSWORD, ApiClient, expect, make_project, run_in_session

COOKIE = "fastapiusersauth"
SETTINGS_ROUTES = ["app", "database", "email", "oauth"]


def _token_of(user: Any) -> str:
    return user.headers["Authorization"].removeprefix("Bearer ")


def _with_cookie(client: TestClient, token: str, method: str, url: str, **kwargs: Any) -> Any:
    # Only the cookie header, no Authorization: what the web page's server side forwards.
    return client.request(method, url, headers={"Cookie": f"{COOKIE}={token}"}, **kwargs)


def _user_token(secret: str, user_id: int, fingerprint: str, lifetime: int) -> str:
    data = {"sub": str(user_id), "aud": ["fastapi-users:auth"], PASSWORD_CLAIM: fingerprint}
    return generate_jwt(data, secret, lifetime)


# --- Cookie auth ---------------------------------------------------------------------------------


def test_cookie_alone_opens_protected_routes(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user, "by-bearer")
    token = _token_of(user)
    listed = expect(_with_cookie(api.client, token, "GET", "/api/v2/project/"), 200)
    assert [p["id"] for p in listed] == [project["id"]]
    made = expect(
        _with_cookie(api.client, token, "POST", "/api/v2/project/", json={"name": "by-cookie"}),
        201,
    )
    assert made["name"] == "by-cookie"
    me = expect(_with_cookie(api.client, token, "GET", "/auth/current-user/"), 200)
    assert me["id"] == user.id
    # The admin's token in the cookie opens the admin's routes, not a user's.
    admin_token = _token_of(api.admin)
    expect(_with_cookie(api.client, admin_token, "GET", "/auth/users/"), 200)
    assert _with_cookie(api.client, token, "GET", "/auth/users/").status_code == 403
    # No token at all is still 401.
    assert api.client.get("/api/v2/project/").status_code == 401


def test_login_answers_a_bearer_token_and_sets_no_cookie(api: ApiClient) -> None:
    # As the reference's bearer login: the web page sets the cookie itself from access_token.
    response = api.client.post(
        "/auth/token/login/",
        data={"username": api.admin.user["email"], "password": "admin-password"},
    )
    body = expect(response, 200)
    assert body["token_type"] == "bearer" and body["access_token"]
    assert "set-cookie" not in response.headers
    bad = api.client.post(
        "/auth/token/login/",
        data={"username": api.admin.user["email"], "password": "wrong-password"},
    )
    assert bad.status_code == 400 and bad.json() == {"detail": "LOGIN_BAD_CREDENTIALS"}


def test_logout_clears_the_cookie(api: ApiClient) -> None:
    user = api.new_user()
    token = _token_of(user)
    response = _with_cookie(api.client, token, "POST", "/auth/token/logout/")
    assert expect(response, 200) == {}
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    assert "Max-Age=0" in set_cookie or "max-age=0" in set_cookie.lower()
    expires = re.search(r"expires=([^;]+)", set_cookie, re.IGNORECASE)
    assert expires is not None
    assert parsedate_to_datetime(expires.group(1)) <= datetime.now(UTC)
    assert api.client.cookies.get(COOKIE) is None
    assert "path=/" in set_cookie.lower() and "httponly" in set_cookie.lower()
    # With the Bearer header too, and never without a token.
    expect(user.post("/auth/token/logout/"), 200)
    assert api.client.post("/auth/token/logout/").status_code == 401
    forged = _user_token("not-the-server-secret-0123456789abcdef", user.id, "x", 60)
    assert _with_cookie(api.client, forged, "POST", "/auth/token/logout/").status_code == 401


def test_forged_or_expired_cookie_is_refused(
    api: ApiClient, settings: Settings, db_url: str
) -> None:
    user = api.new_user()
    assert settings.JWT_SECRET is not None

    async def hashed(session: Any) -> str:
        row = await session.get(UserOAuth, user.id)
        return row.hashed_password

    fingerprint = password_fingerprint(settings.JWT_SECRET, run_in_session(db_url, hashed))
    # The same claims signed right are accepted: what follows fails for the reason named.
    good = _user_token(settings.JWT_SECRET, user.id, fingerprint, 60)
    expect(_with_cookie(api.client, good, "GET", "/api/v2/project/"), 200)

    forged = _user_token(
        "another-secret-5f0c9a7e3b21d84c6e0f9b3a7d2c1e48", user.id, fingerprint, 60
    )
    expired = _user_token(settings.JWT_SECRET, user.id, fingerprint, -10)
    for token in (forged, expired, "not-a-jwt", ""):
        for url in ("/api/v2/project/", "/auth/current-user/"):
            response = _with_cookie(api.client, token, "GET", url)
            assert response.status_code == 401, (token, url, response.text)
            assert response.json() == {"detail": "Unauthorized"}
    # A forged cookie does not pass a write either, even with a body.
    response = _with_cookie(api.client, forged, "POST", "/api/v2/project/", json={"name": "x"})
    assert response.status_code == 401
    # A bad Bearer header next to a good cookie: the cookie still counts (the web page
    # never sends Authorization; a stale header must not lock it out).
    response = api.client.get(
        "/api/v2/project/",
        headers={"Authorization": f"Bearer {forged}", "Cookie": f"{COOKIE}={good}"},
    )
    assert response.status_code == 200


def test_cookie_token_dies_with_a_password_change(api: ApiClient) -> None:
    user = api.new_user()
    token = _token_of(user)
    expect(_with_cookie(api.client, token, "GET", "/api/v2/project/"), 200)
    expect(
        _with_cookie(
            api.client,
            token,
            "PATCH",
            "/auth/current-user/",
            json={"password": "a-brand-new-password"},
        ),
        200,
    )
    assert _with_cookie(api.client, token, "GET", "/api/v2/project/").status_code == 401
    assert user.get("/api/v2/project/").status_code == 401
    fresh = api.client.post(
        "/auth/token/login/",
        data={"username": user.user["email"], "password": "a-brand-new-password"},
    )
    new_token = expect(fresh, 200)["access_token"]
    expect(_with_cookie(api.client, new_token, "GET", "/api/v2/project/"), 200)
    old = api.client.post(
        "/auth/token/login/", data={"username": user.user["email"], "password": USER_PASSWORD}
    )
    assert old.status_code == 400 and old.json()["detail"] == "LOGIN_BAD_CREDENTIALS"


# --- /api/settings/* -----------------------------------------------------------------------------


def test_settings_routes_are_for_superusers_only(api: ApiClient) -> None:
    user = api.new_user()
    no_profile = api.new_user(with_profile=False)
    for name in SETTINGS_ROUTES:
        url = f"/api/settings/{name}/"
        assert api.client.get(url).status_code == 401
        for someone in (user, no_profile):
            response = someone.get(url)
            assert response.status_code == 403, response.text
            assert _with_cookie(api.client, _token_of(someone), "GET", url).status_code == 403
        assert isinstance(expect(api.admin.get(url), 200), dict)
        expect(_with_cookie(api.client, _token_of(api.admin), "GET", url), 200)
    # A second superuser reads them too.
    expect(api.new_user(superuser=True).get("/api/settings/app/"), 200)


def test_settings_show_values_but_never_a_secret(db_url: str, tmp_path: Path) -> None:
    jwt_secret = "jwt-SECRET-7d1c0b9a8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b"
    admin_password = "admin-PASSWORD-e3b0c44298fc1c149afbf4c8"
    db_password = "db-PASSWORD-a665a45920422f9d417e4867"
    url = db_url
    if url.startswith("postgresql"):
        # The test server trusts local connections, so a password in the URL is accepted.
        url = make_url(url).set(password=db_password).render_as_string(hide_password=False)
    settings = Settings(
        DB_URL=url,
        DATA_DIR=tmp_path / "data",
        JWT_SECRET=jwt_secret,
        ADMIN_EMAIL="root@example.org",
        ADMIN_PASSWORD=admin_password,
        BOOTSTRAP_LOCAL_RESOURCE=False,
        EMBEDDED_RUNNER=False,
        JWT_EXPIRE_SECONDS=1234,
        DEFAULT_GROUP_NAME="Everyone",
    )
    with TestClient(create_app(settings)) as client:
        login = client.post(
            "/auth/token/login/", data={"username": "root@example.org", "password": admin_password}
        )
        headers = {"Authorization": f"Bearer {expect(login, 200)['access_token']}"}
        views = {}
        for name in SETTINGS_ROUTES:
            response = client.get(f"/api/settings/{name}/", headers=headers)
            views[name] = expect(response, 200)
            for secret in (jwt_secret, admin_password, db_password):
                assert secret not in response.text, (name, secret)
            # Nor a recognisable piece of one.
            assert "SECRET-7d1c" not in response.text and "PASSWORD-" not in response.text

    app = views["app"]
    assert app["JWT_EXPIRE_SECONDS"] == 1234 and app["COOKIE_EXPIRE_SECONDS"] == 1234
    assert app["FRACTAL_DEFAULT_GROUP_NAME"] == "Everyone"
    assert app["FRACTAL_RUNNER_BACKEND"] == "local"
    assert app["JWT_SECRET_KEY"] == MASK
    assert app["FRACTAL_LIKE_JWT_SECRET"] == MASK
    assert app["FRACTAL_LIKE_ADMIN_PASSWORD"] == MASK
    assert app["FRACTAL_LIKE_ADMIN_EMAIL"] == "root@example.org"
    assert app["FRACTAL_LIKE_DATA_DIR"] == str(tmp_path / "data")

    database = views["database"]
    if url.startswith("postgresql"):
        parsed = make_url(url)
        assert database["DB_ENGINE"] == "postgresql"
        assert database["POSTGRES_PASSWORD"] == MASK
        assert database["POSTGRES_USER"] == parsed.username
        assert database["POSTGRES_HOST"] == parsed.host
        assert database["POSTGRES_PORT"] == parsed.port
        assert database["POSTGRES_DB"] == parsed.database
        assert "***" in database["DATABASE_URL"]
    else:
        assert database["DB_ENGINE"] == "sqlite"
        assert database["SQLITE_PATH"] == make_url(url).database
        assert database["POSTGRES_PASSWORD"] is None

    # We send no email and have no OAuth client: the reference's names, nothing set.
    assert views["email"]["FRACTAL_EMAIL_PASSWORD"] is None
    assert set(views["email"].values()) == {None}
    assert "OAUTH_CLIENT_SECRET" in views["oauth"] and set(views["oauth"].values()) == {None}


def test_database_view_masks_a_password_given_in_the_query(tmp_path: Path) -> None:
    # libpq also takes the password as a query parameter: neither place may leak it.
    settings = Settings(
        DB_URL="postgresql://fractal@db.example.org:6543/fractal?password=hunter2-query",
        DATA_DIR=tmp_path,
        JWT_SECRET="x" * 64,
        ENVIRONMENT="development",
    )
    view = database_settings(settings)
    assert "hunter2" not in str(view)
    assert view["POSTGRES_PASSWORD"] == MASK
    assert view["POSTGRES_HOST"] == "db.example.org" and view["POSTGRES_PORT"] == 6543


# --- /auth/current-user/profile-info/ ------------------------------------------------------------


def test_profile_info_with_and_without_a_profile(api: ApiClient) -> None:
    user = api.new_user()
    profile_id = user.user["profile_id"]
    expect(
        api.admin.patch(
            f"/admin/v2/profile/{profile_id}/",
            json={"username": "alice", "jobs_remote_dir": "/tmp/alice-jobs"},
        ),
        200,
    )
    info = expect(user.get("/auth/current-user/profile-info/"), 200)
    assert info == {
        "has_profile": True,
        "resource_name": "local",
        "profile_name": "local-profile",
        "username": "alice",
    }
    by_cookie = _with_cookie(api.client, _token_of(user), "GET", "/auth/current-user/profile-info/")
    assert expect(by_cookie, 200) == info

    lonely = api.new_user(with_profile=False)
    assert expect(lonely.get("/auth/current-user/profile-info/"), 200) == {
        "has_profile": False,
        "resource_name": None,
        "profile_name": None,
        "username": None,
    }
    assert api.client.get("/auth/current-user/profile-info/").status_code == 401
    # It tells only about oneself: a query naming another user changes nothing.
    again = lonely.get("/auth/current-user/profile-info/", params={"user_id": user.id})
    assert expect(again, 200)["has_profile"] is False
