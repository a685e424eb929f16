"""Database engines and sessions for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite gives its -wal and -shm files the mode of the database file.
SQLITE_COMPANION_SUFFIXES = ("", "-wal", "-shm")

logger = logging.getLogger("fractal_like")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def display_url(url: str) -> str:
    """The URL as it may be printed or logged: its password masked."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite database's file; None for PostgreSQL or in-memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).absolute()


def sync_url(url: str) -> str:
    """The URL with the synchronous driver (sqlite3 or psycopg)."""
    parsed = make_url(url)
    driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The URL with the asynchronous driver (aiosqlite or psycopg)."""
    parsed = make_url(url)
    driver = "sqlite+aiosqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while the runner writes; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def keep_sqlite_file_private(url: str) -> None:
    """Create a SQLite database file 0600 before SQLite does, and tighten an open one.

    SQLite itself creates files 0644 minus the umask, readable by every account on the
    host. Every engine is made here, so every path that may create the database (serve,
    db upgrade, the runner, the CLI, tests) goes through this first. A missing folder is
    left to SQLite, which reports it.
    """
    path = sqlite_file(url)
    if path is None or not path.parent.is_dir():
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for companion in (path.with_name(path.name + suffix) for suffix in SQLITE_COMPANION_SUFFIXES):
        try:
            mode = stat.S_IMODE(companion.stat().st_mode)
            if mode & 0o077:
                companion.chmod(mode & 0o600)
                logger.warning("%s was open to others (%o): now %o", companion, mode, mode & 0o600)
        except FileNotFoundError:
            continue
        except OSError as error:  # e.g. a file of another owner: say so, SQLite may still work
            logger.warning("cannot make %s private: %s", companion, error)


def make_sync_engine(url: str) -> Engine:
    if is_sqlite(url):
        keep_sqlite_file_private(url)
        engine = create_engine(sync_url(url), connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(sync_url(url), pool_pre_ping=True)


def make_async_engine(url: str) -> AsyncEngine:
    if is_sqlite(url):
        keep_sqlite_file_private(url)
        engine = create_async_engine(async_url(url), connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(async_url(url), pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
