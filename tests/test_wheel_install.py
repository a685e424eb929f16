"""A wheel built from this checkout, installed in a fresh venv, migrates a new database.

The alembic environment sits at the top of the repository (migrations/); only the wheel's
copy inside the package lets an installed `fractal-like db upgrade` work, so this builds and
installs a real wheel rather than trusting the editable install the other tests run from.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import venv
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from fractal_like.db import make_sync_engine, sync_url
from fractal_like.migrate import head_revision
from fractal_like.models import SQLModel

from .conftest import PG_URL_VAR, REQUIRE_PG_VAR

REPO = Path(__file__).resolve().parent.parent
# pip and the build backend take seconds each; installing the dependencies takes the rest.
INSTALL_TIMEOUT = 600
_PRINT_MIGRATIONS_DIR = "import fractal_like.migrate as m; print(m.MIGRATIONS_DIR)"


def test_installed_wheel_migrates_a_new_database(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    _assert_ships_the_package_and_migrations(wheel)

    python = _fresh_venv_with(wheel, tmp_path / "venv")
    migrations_dir = _run([str(python), "-c", _PRINT_MIGRATIONS_DIR], cwd=tmp_path).stdout.strip()
    # The installed package's own copy, not a checkout's (cwd is not the checkout).
    assert Path(migrations_dir).is_relative_to(tmp_path / "venv"), migrations_dir

    fractal_like = python.parent / "fractal-like"
    sqlite_url = f"sqlite:///{tmp_path / 'new.db'}"
    _upgrade_with(fractal_like, sqlite_url, tmp_path)
    _assert_migrated(sqlite_url)

    pg_base = os.environ.get(PG_URL_VAR)
    if pg_base:
        with _new_pg_database(pg_base) as pg_url:
            _upgrade_with(fractal_like, pg_url, tmp_path)
            _assert_migrated(pg_url)
    elif os.environ.get(REQUIRE_PG_VAR) == "1":
        pytest.fail(f"{REQUIRE_PG_VAR}=1 but {PG_URL_VAR} is not set")


def _build_wheel(out_dir: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out_dir), str(REPO)])
    (wheel,) = out_dir.glob("fractal_like-*.whl")
    return wheel


def _assert_ships_the_package_and_migrations(wheel: Path) -> None:
    """Every file of the package (data files too) and of migrations/, at its installed path."""
    expected = {f"fractal_like/{name}" for name in _files_under(REPO / "fractal_like")}
    expected |= {f"fractal_like/migrations/{name}" for name in _files_under(REPO / "migrations")}
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert expected - shipped == set()
    assert not any("__pycache__" in name for name in shipped)


def _files_under(root: Path) -> set[str]:
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def _fresh_venv_with(wheel: Path, venv_dir: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(venv_dir)
    python = venv_dir / "bin" / "python"
    # Dependencies come from the package index the machine's pip is configured with.
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)], timeout=INSTALL_TIMEOUT)
    return python


def _upgrade_with(fractal_like: Path, database_url: str, work_dir: Path) -> None:
    result = _run(
        [str(fractal_like), "db", "upgrade"],
        cwd=work_dir,
        FRACTAL_LIKE_DB_URL=database_url,
        FRACTAL_LIKE_DATA_DIR=str(work_dir / "data"),
    )
    output = result.stdout + result.stderr
    assert "is up to date" in output, output


def _assert_migrated(database_url: str) -> None:
    engine = make_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert set(SQLModel.metadata.tables) <= tables
    assert version == head_revision()


@contextmanager
def _new_pg_database(base_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database beside the test one; dropped afterwards."""
    name = f"flwheel_{uuid.uuid4().hex[:8]}"
    admin = create_engine(sync_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _run(
    command: list[str], cwd: Path | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `command` without this process's FRACTAL_LIKE_ settings; fail with its output."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("FRACTAL_LIKE_")}
    kept.pop("PYTHONPATH", None)  # the installed package, never this checkout's
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**kept, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    return result
