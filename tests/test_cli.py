"""The `fractal-like` command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fractal_like.api.app import create_app
from fractal_like.cli import app
from fractal_like.config import load_settings

from .helpers import login

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
        app, ["user", "create", "sci@example.org", "--password", "sci-pw", "--project-dir", "/d"]
    )
    assert result.exit_code == 0, result.output
    assert "created user sci@example.org" in result.output
    again = runner.invoke(app, ["user", "create", "sci@example.org", "--password", "sci-pw"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(app, ["user", "create", "not-an-email", "--password", "sci-pw"])
    assert bad.exit_code == 1 and "not a valid e-mail" in bad.output

    with TestClient(create_app(load_settings())) as client:
        token = login(client, "sci@example.org", "sci-pw")
        me = client.get("/auth/current-user/", headers={"Authorization": f"Bearer {token}"})
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
        app, ["user", "set-password", "sci@example.org", "--password", "new-pw"]
    )
    assert changed.exit_code == 0, changed.output
    with TestClient(create_app(load_settings())) as client:
        assert login(client, "sci@example.org", "new-pw")


def test_serve_refuses_unmigrated_database(env: Path) -> None:
    result = runner.invoke(app, ["serve", "--no-migrate", "--port", "1"])
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
