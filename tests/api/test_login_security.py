"""Passwords long enough, login attempts limited, tokens refused after a password change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fastapi_users.jwt import generate_jwt
from typer.testing import CliRunner

from fractal_like.api.app import create_app
from fractal_like.api.login_guard import MAX_TRACKED_KEYS, LoginGuard, LoginLimits
from fractal_like.cli import app as cli_app
from fractal_like.config import ConfigError, Settings, load_settings
from fractal_like.services.users_cli import set_password

from ..support.helpers import ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD, ApiClient, expect, login


def _login(client: TestClient, email: str, password: str, **headers: str) -> object:
    return client.post(
        "/auth/token/login/", data={"username": email, "password": password}, headers=headers
    )


@pytest.fixture
def custom_api(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., ApiClient]]:
    """An ApiClient factory over an app whose settings differ from the default ones."""
    clients: list[TestClient] = []

    def make(**changes: object) -> ApiClient:
        client = TestClient(create_app(settings.model_copy(update=changes)))
        clients.append(client.__enter__())
        return ApiClient(client, tmp_path)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


# --- minimum password length -------------------------------------------------------------


def test_min_password_length_applies_to_every_way_of_setting_one(
    custom_api: Callable[..., ApiClient],
) -> None:
    api = custom_api(MIN_PASSWORD_LENGTH=12)
    admin = api.admin
    short, enough = "x" * 11, "y" * 12
    body = {"email": "len@example.org", "password": short}
    detail = expect(admin.post("/auth/register/", json=body), 422)["detail"]
    assert detail == "the password must have at least 12 characters"
    created = expect(admin.post("/auth/register/", json={**body, "password": enough}), 201)
    expect(admin.patch(f"/auth/users/{created['id']}/", json={"password": short}), 422)
    token = login(api.client, "len@example.org", enough)
    headers = {"Authorization": f"Bearer {token}"}
    response = api.client.patch("/auth/current-user/", json={"password": short}, headers=headers)
    assert expect(response, 422)["detail"] == "the password must have at least 12 characters"
    # Nothing was changed by the refused attempts.
    assert login(api.client, "len@example.org", enough)


def test_default_min_password_length_is_8(api: ApiClient) -> None:
    body = {"email": "eight@example.org", "password": "seven77"}
    expect(api.admin.post("/auth/register/", json=body), 422)
    expect(api.admin.post("/auth/register/", json={**body, "password": "eight888"}), 201)


def test_cli_refuses_short_passwords(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv("FRACTAL_LIKE_DB_URL", db_url)
    monkeypatch.setenv("FRACTAL_LIKE_DATA_DIR", str(settings.DATA_DIR))
    monkeypatch.setenv("FRACTAL_LIKE_MIN_PASSWORD_LENGTH", "10")
    monkeypatch.delenv("FRACTAL_LIKE_JWT_SECRET", raising=False)
    monkeypatch.delenv("FRACTAL_LIKE_ADMIN_PASSWORD", raising=False)
    runner = CliRunner()
    args = ["user", "create", "cli@example.org", "--password"]
    refused = runner.invoke(cli_app, [*args, "nine-char"])
    assert refused.exit_code == 1 and "at least 10 characters" in refused.output
    assert runner.invoke(cli_app, [*args, "ten-chars!"]).exit_code == 0
    args = ["user", "set-password", "cli@example.org", "--password"]
    refused = runner.invoke(cli_app, [*args, "nine-char"])
    assert refused.exit_code == 1 and "at least 10 characters" in refused.output


def test_short_admin_password_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FRACTAL_LIKE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FRACTAL_LIKE_ADMIN_PASSWORD", "admin")
    with pytest.raises(ConfigError, match="FRACTAL_LIKE_ADMIN_PASSWORD is too short"):
        load_settings()
    monkeypatch.setenv("FRACTAL_LIKE_MIN_PASSWORD_LENGTH", "5")
    assert load_settings().ADMIN_PASSWORD == "admin"


# --- login attempts ----------------------------------------------------------------------


def test_failed_logins_lock_the_account_then_the_window_passes(
    custom_api: Callable[..., ApiClient],
) -> None:
    # A window long enough for three password checks on a loaded machine (each ~0.3-1 s).
    api = custom_api(LOGIN_MAX_FAILURES_PER_ACCOUNT=3, LOGIN_FAILURE_WINDOW_SECONDS=6)
    user = api.new_user()
    email = user.user["email"]
    for _ in range(3):
        expect(_login(api.client, email, "wrong-password"), 400)
    started = time.monotonic()
    refused = _login(api.client, email, USER_PASSWORD)  # even the right password
    assert expect(refused, 429)["detail"].startswith("too many failed logins")
    assert 1 <= int(refused.headers["Retry-After"]) <= 6
    # The account's name in another case is the same account.
    expect(_login(api.client, email.upper(), USER_PASSWORD), 429)
    # Other accounts from the same address are not held back.
    assert login(api.client, ADMIN_EMAIL, ADMIN_PASSWORD)
    time.sleep(max(0.0, 6.1 - (time.monotonic() - started)))
    assert login(api.client, email, USER_PASSWORD)


def test_a_success_resets_the_account_count(custom_api: Callable[..., ApiClient]) -> None:
    api = custom_api(LOGIN_MAX_FAILURES_PER_ACCOUNT=3)
    user = api.new_user()
    email = user.user["email"]
    for _ in range(3):
        for _ in range(2):
            expect(_login(api.client, email, "wrong-password"), 400)
        assert login(api.client, email, USER_PASSWORD)


def test_failures_from_one_address_are_limited(custom_api: Callable[..., ApiClient]) -> None:
    api = custom_api(LOGIN_MAX_FAILURES_PER_ADDRESS=4)
    # Successes never count against the address: the tests log in hundreds of times.
    for _ in range(10):
        assert login(api.client, ADMIN_EMAIL, ADMIN_PASSWORD)
    for number in range(4):
        expect(_login(api.client, f"nobody{number}@example.org", "guess-guess"), 400)
    refused = expect(_login(api.client, ADMIN_EMAIL, ADMIN_PASSWORD), 429)
    assert "try again" in refused["detail"]
    # X-Forwarded-For is not trusted by default: it does not get around the limit.
    spoofed = _login(api.client, ADMIN_EMAIL, ADMIN_PASSWORD, **{"X-Forwarded-For": "10.0.0.9"})
    expect(spoofed, 429)


def test_forwarded_for_is_used_when_trusted(custom_api: Callable[..., ApiClient]) -> None:
    api = custom_api(LOGIN_MAX_FAILURES_PER_ADDRESS=2, LOGIN_TRUST_FORWARDED_FOR=True)
    proxy = {"X-Forwarded-For": "10.0.0.1, 192.168.0.1"}
    for number in range(2):
        expect(_login(api.client, f"nobody{number}@example.org", "guess-guess", **proxy), 400)
    expect(_login(api.client, ADMIN_EMAIL, ADMIN_PASSWORD, **proxy), 429)
    other = _login(api.client, ADMIN_EMAIL, ADMIN_PASSWORD, **{"X-Forwarded-For": "10.0.0.2"})
    expect(other, 200)


def test_guard_memory_is_bounded() -> None:
    guard = LoginGuard(LoginLimits(max_per_account=5, max_per_address=10**9, window_seconds=60))
    for number in range(MAX_TRACKED_KEYS + 1000):
        guard.record_failure(f"spray{number}@example.org", "10.0.0.1")
    assert guard.tracked_keys() <= MAX_TRACKED_KEYS
    # The address, touched last, is still counted.
    assert guard.retry_after("fresh@example.org", "10.0.0.1") is None
    for _ in range(5):
        guard.record_failure("fresh@example.org", "10.0.0.1")
    assert guard.retry_after("fresh@example.org", "10.0.0.1") == 60


# --- tokens and password changes ---------------------------------------------------------


def _me(client: TestClient, token: str) -> int:
    return client.get(
        "/auth/current-user/", headers={"Authorization": f"Bearer {token}"}
    ).status_code


def test_own_password_change_refuses_earlier_tokens(api: ApiClient) -> None:
    user = api.new_user()
    email = user.user["email"]
    first, second = (
        user.headers["Authorization"].split()[1],
        login(api.client, email, USER_PASSWORD),
    )
    assert _me(api.client, first) == _me(api.client, second) == 200
    expect(user.patch("/auth/current-user/", json={"password": "a-new-password"}), 200)
    assert _me(api.client, first) == _me(api.client, second) == 401
    expect(user.get("/api/v2/project/"), 401)
    fresh = login(api.client, email, "a-new-password")
    assert _me(api.client, fresh) == 200
    expect(_login(api.client, email, USER_PASSWORD), 400)


def test_admin_password_change_refuses_the_users_tokens(api: ApiClient) -> None:
    user = api.new_user()
    other = api.new_user()
    expect(api.admin.patch(f"/auth/users/{user.id}/", json={"password": "set-by-admin"}), 200)
    expect(user.get("/auth/current-user/"), 401)
    expect(other.get("/auth/current-user/"), 200)  # other users' tokens are untouched
    expect(api.admin.get("/auth/current-user/"), 200)
    # Changes that are not the password keep tokens valid.
    expect(api.admin.patch(f"/auth/users/{other.id}/", json={"slurm_accounts": ["a"]}), 200)
    expect(other.get("/auth/current-user/"), 200)
    assert _me(api.client, login(api.client, user.user["email"], "set-by-admin")) == 200


def test_cli_password_change_refuses_the_users_tokens(api: ApiClient, settings: Settings) -> None:
    user = api.new_user()
    asyncio.run(set_password(settings, user.user["email"], "set-by-the-cli"))
    expect(user.get("/auth/current-user/"), 401)
    assert _me(api.client, login(api.client, user.user["email"], "set-by-the-cli")) == 200


def test_token_without_password_fingerprint_is_refused(api: ApiClient, settings: Settings) -> None:
    # Signed with the server's own secret, as tokens issued before this check were.
    token = generate_jwt(
        {"sub": str(api.admin.id), "aud": ["fastapi-users:auth"]}, settings.jwt_secret(), 600
    )
    assert _me(api.client, token) == 401
    forged = generate_jwt(
        {"sub": str(api.admin.id), "aud": ["fastapi-users:auth"], "pwd": "0" * 32},
        settings.jwt_secret(),
        600,
    )
    assert _me(api.client, forged) == 401
