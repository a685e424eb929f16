"""Schema migrations: upgrade, and checking that a database is at the code's revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from .db import display_url, make_sync_engine, sqlite_file


def _migrations_dir() -> Path:
    """The alembic environment: the copy a built wheel ships inside the package, else the
    checkout's top-level migrations/ (a source tree or an editable install)."""
    package_dir = Path(__file__).resolve().parent
    shipped = package_dir / "migrations"
    # env.py, not the folder: a checkout may still hold the old folder's __pycache__.
    if (shipped / "env.py").is_file():
        return shipped
    return package_dir.parent / "migrations"


MIGRATIONS_DIR = _migrations_dir()


class SchemaMismatchError(RuntimeError):
    """The database is not at the revision this code understands."""


def alembic_config(database_url: str) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(database_url: str) -> str | None:
    """The database's revision; None for a database without schema (or no SQLite file yet)."""
    if _missing_sqlite_file(database_url) is not None:
        return None  # connecting would create an empty file, or fail if its folder is missing
    engine = make_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as error:
        raise SchemaMismatchError(
            f"cannot reach the database at {display_url(database_url)}: {error.orig}"
        ) from None
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def check_schema(database_url: str) -> None:
    """Raise SchemaMismatchError, saying what to run, unless the database is at head."""
    current = current_revision(database_url)
    head = head_revision()
    if current == head:
        return
    script = ScriptDirectory.from_config(alembic_config(database_url))
    missing_file = _missing_sqlite_file(database_url)
    if missing_file is not None:
        # Most often the command ran in another folder than the server's: advising
        # `db upgrade` here would create a second, empty database.
        raise SchemaMismatchError(
            f"the SQLite database file {missing_file} does not exist: point "
            "FRACTAL_LIKE_DATA_DIR (the folder holding fractal-like.db) or FRACTAL_LIKE_DB_URL "
            "at the server's database, or run from the folder that holds fractal-like-data/ "
            "(`fractal-like db upgrade` would create a new, empty database at this path)"
        )
    if current is None:
        raise SchemaMismatchError(
            "the database has no schema yet: run `fractal-like db upgrade` first"
        )
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise SchemaMismatchError(
            f"the database is at revision {current}, newer than this fractal-like "
            f"understands (head {head}): upgrade fractal-like, not the database"
        )
    raise SchemaMismatchError(
        f"the database is at revision {current}, older than {head}: run `fractal-like db upgrade`"
    )


def _missing_sqlite_file(database_url: str) -> Path | None:
    """The path of a SQLite database file that does not exist, else None."""
    path = sqlite_file(database_url)
    return path if path is not None and not path.exists() else None
