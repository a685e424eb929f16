"""The `fractal-like` command line."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from fractal_like.api.app import create_app
from fractal_like.cli import app
from fractal_like.config import load_settings

from .conftest import PG_URL_VAR, REQUIRE_PG_VAR
from .support.helpers import ADMIN_EMAIL, login
from .support.live_server import free_port, start_server

runner = CliRunner()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("FRACTAL_LIKE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FRACTAL_LIKE_ADMIN_PASSWORD", "admin-pw")
    for name in ("FRACTAL_LIKE_DB_URL", "FRACTAL_LIKE_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def test_db_upgrade_check_and_user_create(env: Path) -> None:
    result = runner.invoke(app, ["db", "check"])
    assert result.exit_code == 1 and "fractal-like db upgrade" in result.output
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (env / "fractal-like.db").exists()
    assert runner.invoke(app, ["db", "check"]).exit_code == 0

    result = runner.invoke(
        app,
        ["user", "create", "sci@example.org", "--password", "sci-password", "--project-dir", "/d"],
    )
    assert result.exit_code == 0, result.output
    assert "created user sci@example.org" in result.output
    again = runner.invoke(app, ["user", "create", "sci@example.org", "--password", "sci-password"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(app, ["user", "create", "not-an-email", "--password", "sci-password"])
    assert bad.exit_code == 1 and "not a valid e-mail" in bad.output

    with TestClient(create_app(load_settings())) as client:
        token = login(client, "sci@example.org", "sci-password")
        me = client.get(
            "/auth/current-user/?group_ids_names=true",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert me.json()["project_dirs"] == ["/d"]
        assert [name for _, name in me.json()["group_ids_names"]] == ["All"]

        # The default admin (no FRACTAL_LIKE_ADMIN_EMAIL set) can log in and read itself.
        admin = login(client, load_settings().ADMIN_EMAIL, "admin-pw")
        shown = client.get("/auth/current-user/", headers={"Authorization": f"Bearer {admin}"})
        assert shown.status_code == 200 and shown.json()["is_superuser"] is True
        # ... and, on the embedded default, use /api/v2/ at once through a local profile.
        assert shown.json()["profile_id"] is not None
        created = client.post(
            "/api/v2/project/", json={"name": "p"}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert created.status_code == 201

    changed = runner.invoke(
        app, ["user", "set-password", "sci@example.org", "--password", "new-password"]
    )
    assert changed.exit_code == 0, changed.output
    with TestClient(create_app(load_settings())) as client:
        assert login(client, "sci@example.org", "new-password")


def test_serve_refuses_unmigrated_database(env: Path) -> None:
    result = runner.invoke(app, ["serve", "--no-migrate", "--port", str(free_port())])
    assert result.exit_code == 1
    assert "fractal-like db upgrade" in result.output


def test_bad_setting_stops_with_its_name(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRACTAL_LIKE_JWT_EXPIRE_SECONDS", "soon")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "FRACTAL_LIKE_JWT_EXPIRE_SECONDS" in result.output


def test_openapi_is_complete(env: Path) -> None:
    result = runner.invoke(app, ["openapi"])
    assert result.exit_code == 0
    spec = json.loads(result.stdout)
    for path in (
        "/auth/token/login/",
        "/api/v2/project/{project_id}/job/submit/",
        "/api/v2/task/collect/custom/",
        "/admin/v2/resource/",
    ):
        assert path in spec["paths"]


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any FRACTAL_LIKE_ setting, plus `extra`."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("FRACTAL_LIKE_")}
    return {**kept, **extra}


def test_serve_on_a_busy_port_says_how_to_pick_another_and_creates_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "fractal_like.cli", "serve", "--port", str(port)],
            env=_clean_env(FRACTAL_LIKE_DATA_DIR=str(data_dir)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"127.0.0.1:{port}" in output and "in use" in output
    assert "--port" in output and "FRACTAL_LIKE_PORT" in output
    assert "FRACTAL_LIKE_HOST" in output
    # Nothing happened before the check: no banner, no password, no data folder, no database.
    assert "serving at" not in output and "FRACTAL_PASSWORD" not in output
    assert list(tmp_path.iterdir()) == []


def _start_and_stop(db_url: str, tmp_path: Path, **extra_env: str) -> str:
    server = start_server(db_url, tmp_path, **extra_env)
    server.stop()
    return server.log()


def test_later_starts_say_truthfully_where_the_admin_password_comes_from(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'server-data' / 'fractal-like.db'}"
    first = _start_and_stop(db_url, tmp_path, FRACTAL_LIKE_ADMIN_PASSWORD="")
    generated = re.search(r"FRACTAL_PASSWORD=(\S+) fractal user whoami", first)
    assert generated is not None, first
    assert "shown only once" in first

    second = _start_and_stop(db_url, tmp_path, FRACTAL_LIKE_ADMIN_PASSWORD="")
    assert generated.group(1) not in second
    assert "you set before" not in second
    assert "FRACTAL_PASSWORD=<the admin's password>" in second
    assert "printed when this server first started" in second
    assert "fractal-like user set-password" in second

    # With the variable set now, the banner says so, and that it no longer applies.
    third = _start_and_stop(db_url, tmp_path, FRACTAL_LIKE_ADMIN_PASSWORD="something-else")
    assert "FRACTAL_LIKE_ADMIN_PASSWORD is set" in third and "first created" in third

    # The password printed at the first start is still the admin's.
    server = start_server(db_url, tmp_path, FRACTAL_LIKE_ADMIN_PASSWORD="")
    try:
        answer = httpx.post(
            f"{server.url}/auth/token/login/",
            data={"username": ADMIN_EMAIL, "password": generated.group(1)},
        )
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()


def test_db_check_from_another_folder_names_the_database_and_creates_nothing(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("FRACTAL_LIKE_DATA_DIR")

    result = runner.invoke(app, ["db", "check"])
    assert result.exit_code == 1
    wrong_file = elsewhere / "fractal-like-data" / "fractal-like.db"
    assert f"{wrong_file} does not exist" in result.output
    assert f"data folder {elsewhere / 'fractal-like-data'}" in result.output
    assert "FRACTAL_LIKE_DATA_DIR" in result.output and "FRACTAL_LIKE_DB_URL" in result.output
    assert list(elsewhere.iterdir()) == []

    # Pointed at the server's data folder, it names that file and finds it current.
    monkeypatch.setenv("FRACTAL_LIKE_DATA_DIR", str(env))
    result = runner.invoke(app, ["db", "check"])
    assert result.exit_code == 0, result.output
    assert f"SQLite file {env / 'fractal-like.db'}, data folder {env}" in result.output
    assert "database schema is current" in result.output
    assert list(elsewhere.iterdir()) == []


@pytest.fixture
def pg_url_with_password(pg_database: str | None) -> str:
    """The test PostgreSQL database's URL with a password in it (trust auth ignores it)."""
    if pg_database is None:
        if os.environ.get(REQUIRE_PG_VAR) == "1":
            pytest.fail(f"{REQUIRE_PG_VAR}=1 but {PG_URL_VAR} is not set")
        pytest.skip(f"PostgreSQL tests need {PG_URL_VAR}")
    return make_url(pg_database).set(password=PG_PASSWORD).render_as_string(hide_password=False)


PG_PASSWORD = "pg-secret-4711"


def test_database_password_is_never_printed(
    pg_url_with_password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRACTAL_LIKE_DB_URL", pg_url_with_password)
    monkeypatch.setenv("FRACTAL_LIKE_DATA_DIR", str(tmp_path / "data"))
    for command in (["db", "upgrade"], ["db", "check"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        assert PG_PASSWORD not in result.output
        assert ":***@" in result.output  # the database is named, its password masked

    banner = _start_and_stop(pg_url_with_password, tmp_path)
    assert "serving at" in banner and ":***@" in banner
    assert PG_PASSWORD not in banner

    runner_process = subprocess.Popen(
        [sys.executable, "-m", "fractal_like.cli", "runner"],
        env=_clean_env(
            FRACTAL_LIKE_DB_URL=pg_url_with_password, FRACTAL_LIKE_DATA_DIR=str(tmp_path / "r")
        ),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner_process.stderr is not None
        first_line = runner_process.stderr.readline()
    finally:
        runner_process.terminate()
        runner_process.wait(timeout=30)
    assert first_line.startswith("runner started on") and ":***@" in first_line
    assert PG_PASSWORD not in first_line

    # An unreachable database is named the same way.
    unreachable = make_url(pg_url_with_password).set(port=free_port())
    monkeypatch.setenv("FRACTAL_LIKE_DB_URL", unreachable.render_as_string(hide_password=False))
    for command in (["db", "upgrade"], ["db", "check"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, result.output
        assert "cannot reach the database" in result.output and ":***@" in result.output
        assert PG_PASSWORD not in result.output
