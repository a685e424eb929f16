"""The models and the alembic migrations describe the same schema, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient

from fractal_like.api.app import create_app
from fractal_like.config import Settings
from fractal_like.db import make_sync_engine
from fractal_like.migrate import SchemaMismatchError, check_schema, head_revision, upgrade
from fractal_like.models import SQLModel


def test_models_match_migrations(db_url: str) -> None:
    engine = make_sync_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert differences == []
    check_schema(db_url)


def test_unmigrated_database_is_refused(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(SchemaMismatchError, match="fractal-like db upgrade"):
        create_app(Settings(DB_URL=url, DATA_DIR=tmp_path))
    upgrade(url)
    settings = Settings(DB_URL=url, DATA_DIR=tmp_path, ADMIN_PASSWORD="pw-123456")
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/alive/").status_code == 200


def test_newer_database_is_refused(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    upgrade(url)
    engine = make_sync_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff_future'")
    engine.dispose()
    with pytest.raises(SchemaMismatchError, match="newer than this fractal-like"):
        check_schema(url)
    assert head_revision() != "ffff_future"
