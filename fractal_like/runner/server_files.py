"""The server's own files, which no unit may reach: what the runner confines local units from."""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy.engine import make_url

from ..config import Settings

# SQLite writes these beside the database; a unit that created one could corrupt it.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def _sqlite_files(database_url: str) -> list[Path]:
    url = make_url(database_url)
    if not url.get_backend_name().startswith("sqlite") or not url.database:
        return []
    if url.database == ":memory:":
        return []
    database = Path(url.database).absolute()
    return [database, *(database.with_name(database.name + side) for side in SQLITE_SIDE_FILES)]


def private_paths(settings: Settings) -> list[str]:
    """The JWT secret file, the SQLite database with its side files, and every other file of
    the data folder. Its folders (the embedded resource's jobs and tasks, the first admin's
    data) are for units."""
    data = settings.DATA_DIR.absolute()
    paths = {settings.jwt_secret_file.absolute(), *_sqlite_files(settings.database_url)}
    with contextlib.suppress(OSError):  # no data folder (yet): nothing of ours lies in it
        paths.update(entry for entry in data.iterdir() if not entry.is_dir())
    return sorted(str(path) for path in paths)
