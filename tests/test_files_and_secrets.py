"""The data folder and the database are the server's alone; weak JWT secrets are refused."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from fractal_like.config import ConfigError, Settings, load_settings
from fractal_like.db import make_sync_engine
from fractal_like.migrate import upgrade
from fractal_like.secret_strength import secret_weakness

# Run under umask 000, as a careless service unit might: `db upgrade` through the real CLI,
# the generated JWT secret, then a write with the connection still open, so that SQLite's
# -wal and -shm files exist when their modes are read.
_UNDER_UMASK_000 = """
import json, os, stat, sys
os.umask(0)
from fractal_like.cli import app
from fractal_like.config import load_settings
from fractal_like.db import make_sync_engine
from sqlalchemy import text

try:
    app(["db", "upgrade"])
except SystemExit as exit:
    assert not exit.code, exit.code
settings = load_settings()
settings.jwt_secret()
engine = make_sync_engine(settings.database_url)
with engine.connect() as connection:
    connection.execute(text("PRAGMA user_version=7"))
    connection.commit()
    data = settings.DATA_DIR
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [data, *data.iterdir()]}
engine.dispose()
print(json.dumps(modes))
"""


def _server_env(data_dir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FRACTAL_")}
    return {**env, "FRACTAL_LIKE_DATA_DIR": str(data_dir)}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_folder_and_database_are_private_under_umask_000(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    result = subprocess.run(
        [sys.executable, "-c", _UNDER_UMASK_000],
        env=_server_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    modes = json.loads(result.stdout.strip().splitlines()[-1])
    assert modes == {
        "data": 0o700,
        "fractal-like.db": 0o600,
        "fractal-like.db-wal": 0o600,
        "fractal-like.db-shm": 0o600,
        "jwt-secret": 0o600,
    }


def test_open_data_folder_and_database_are_tightened(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o777)
    settings = Settings(DATA_DIR=data_dir)
    database = data_dir / "fractal-like.db"
    database.touch()
    database.chmod(0o644)
    settings.ensure_data_dir()
    assert _mode(data_dir) == 0o700
    upgrade(settings.database_url)  # any engine on the file makes it private first
    assert _mode(database) == 0o600


def test_sqlite_file_is_created_private_by_any_engine(tmp_path: Path) -> None:
    # The runner and the CLI make their engines the same way as `serve` and `db upgrade`.
    old_umask = os.umask(0)
    try:
        engine = make_sync_engine(f"sqlite:///{tmp_path / 'other.db'}")
        with engine.connect() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.commit()
            wal = tmp_path / "other.db-wal"
            assert _mode(wal) == 0o600
        engine.dispose()
    finally:
        os.umask(old_umask)
    assert _mode(tmp_path / "other.db") == 0o600


WEAK = [
    "a" * 32,
    "abc" * 12,
    ("0123456789" * 4)[:32],
    "0123456789abcdefghijklmnopqrstuvwxyz",
    "zyxwvutsrqponmlkjihgfedcba9876543210",
    "passwordpasswordpasswordpassword",
    "Xk3" + "y" * 40,
    "96626506133320917068214530914735",  # digits only: about 106 bits
    "changeme",
    "short-but-random-Zq8",
]


@pytest.mark.parametrize("secret", WEAK)
def test_low_entropy_secret_is_refused_in_production(
    secret: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FRACTAL_LIKE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FRACTAL_LIKE_JWT_SECRET", secret)
    with pytest.raises(ConfigError, match=r"FRACTAL_LIKE_JWT_SECRET is too weak \(it "):
        load_settings()
    monkeypatch.setenv("FRACTAL_LIKE_ENVIRONMENT", "development")
    assert secret == load_settings().JWT_SECRET


def test_random_secrets_pass(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    generated = subprocess.run(
        ["openssl", "rand", "-hex", "32"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setenv("FRACTAL_LIKE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FRACTAL_LIKE_JWT_SECRET", generated)
    assert generated == load_settings().JWT_SECRET
    for _ in range(5000):
        for secret in (secrets.token_hex(32), secrets.token_urlsafe(32)):
            assert secret_weakness(secret) is None, secret
