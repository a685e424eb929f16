"""Schema migrations: upgrade, and checking that a database is at the code's revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from .db import make_sync_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


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
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return None  # connecting would create an empty file, or fail if its folder is missing
    engine = make_sync_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as error:
        raise SchemaMismatchError(
            f"cannot reach the database at {url.render_as_string(hide_password=True)}: {error.orig}"
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
