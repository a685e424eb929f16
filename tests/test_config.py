"""Settings: defaults, refusal of weak secrets, messages that name the variable."""

from __future__ import annotations

import pytest

from fractal_like.config import ConfigError, Settings, load_settings


def test_weak_secret_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("FRACTAL_LIKE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FRACTAL_LIKE_JWT_SECRET", "secret")
    with pytest.raises(ConfigError, match="FRACTAL_LIKE_JWT_SECRET"):
        load_settings()
    monkeypatch.setenv("FRACTAL_LIKE_ENVIRONMENT", "development")
    assert load_settings().JWT_SECRET == "secret"


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRACTAL_LIKE_JWT_EXPIRE_SECONDS", "soon")
    with pytest.raises(ConfigError, match="FRACTAL_LIKE_JWT_EXPIRE_SECONDS"):
        load_settings()
    monkeypatch.delenv("FRACTAL_LIKE_JWT_EXPIRE_SECONDS")
    monkeypatch.setenv("FRACTAL_LIKE_DB_URL", "mysql://x")
    with pytest.raises(ConfigError, match="FRACTAL_LIKE_DB_URL"):
        load_settings()


def test_embedded_defaults(tmp_path) -> None:
    settings = Settings(DATA_DIR=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'fractal-like.db'}"
    secret = settings.jwt_secret()
    assert len(secret) >= 32
    assert settings.jwt_secret() == secret  # persisted, so tokens survive a restart
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o777 == 0o600


def test_admin_email_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRACTAL_LIKE_ADMIN_EMAIL", "admin@server.local")
    with pytest.raises(ConfigError, match="FRACTAL_LIKE_ADMIN_EMAIL"):
        load_settings()
    monkeypatch.setenv("FRACTAL_LIKE_ADMIN_EMAIL", "admin@example.org")
    assert load_settings().ADMIN_EMAIL == "admin@example.org"
