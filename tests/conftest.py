"""Shared fixtures: a real database (SQLite always, PostgreSQL when configured) and clients."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fractal_like.api.app import create_app
from fractal_like.config import Settings
from fractal_like.db import sync_url
from fractal_like.migrate import upgrade
from fractal_like.models import SQLModel

from .support.helpers import ADMIN_EMAIL, ADMIN_PASSWORD, ApiClient
from .support.slurm_support import ALICE, ensure_unix_user, remove_shared_dir, shared_dir
from .support.ssh_support import SSHD, SshServer, start_sshd

PG_URL_VAR = "FRACTAL_LIKE_TEST_PG_URL"
REQUIRE_PG_VAR = "FRACTAL_LIKE_REQUIRE_PG"


def _backends() -> list[str]:
    return ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per worker; each test copies it (much faster than migrating)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database(worker_id: str) -> Iterator[str | None]:
    """A migrated PostgreSQL database of this xdist worker's own, or None when not configured."""
    base = os.environ.get(PG_URL_VAR)
    if not base:
        yield None
        return
    name = f"fltest_{worker_id}_{uuid.uuid4().hex[:8]}"
    admin_engine = create_engine(sync_url(base), isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin_engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin_engine.dispose()


def _truncate_all(url: str) -> None:
    engine = create_engine(sync_url(url))
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=_backends())
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_database: str | None
) -> str:
    """The URL of an empty, migrated database, on each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "fractal-like.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    if pg_database is None:
        if os.environ.get(REQUIRE_PG_VAR) == "1":
            pytest.fail(f"{REQUIRE_PG_VAR}=1 but {PG_URL_VAR} is not set")
        pytest.skip(f"PostgreSQL tests need {PG_URL_VAR}")
    _truncate_all(pg_database)
    return pg_database


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        DB_URL=db_url,
        DATA_DIR=tmp_path / "data",
        JWT_SECRET="test-secret-5f0c9a7e3b21d84c6e0f9b3a7d2c1e48a6b0d3f7",
        ADMIN_EMAIL=ADMIN_EMAIL,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        BOOTSTRAP_LOCAL_RESOURCE=False,  # tests build their own resources
        EMBEDDED_RUNNER=False,  # API tests see jobs as submitted; runner tests start one
    )


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def api(app_client: TestClient, tmp_path: Path) -> ApiClient:
    """Helpers bound to the running app: the admin's client and user factories."""
    return ApiClient(app_client, tmp_path)


@pytest.fixture
def admin(api: ApiClient) -> TestClient:
    return api.admin


SLURM_CONF_VAR = "FRACTAL_LIKE_TEST_SLURM_CONF"
REQUIRE_SLURM_VAR = "FRACTAL_LIKE_REQUIRE_SLURM"


def _no_slurm(reason: str) -> NoReturn:
    """Skip, or fail when CI requires SLURM, so that a green CI run means these tests ran."""
    if os.environ.get(REQUIRE_SLURM_VAR) == "1":
        pytest.fail(f"{REQUIRE_SLURM_VAR}=1 but {reason}")
    pytest.skip(f"no SLURM cluster: {reason} (start one with scripts/slurm-dev-cluster.sh)")


@pytest.fixture(scope="session")
def slurm_conf() -> str:
    """The slurm.conf of a running local cluster; also this process's SLURM_CONF."""
    conf = os.environ.get(SLURM_CONF_VAR)
    if not conf:
        _no_slurm(f"{SLURM_CONF_VAR} is not set")
    if not Path(conf).is_file():
        # sinfo would spend a long time on DNS lookups for a configuration source.
        _no_slurm(f"{SLURM_CONF_VAR}={conf} is not a file")
    try:
        answer = subprocess.run(
            ["sinfo", "-h", "-o", "%T"],
            env={**os.environ, "SLURM_CONF": conf},
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _no_slurm(f"sinfo did not run: {exc}")
    if answer.returncode != 0:
        _no_slurm(f"the cluster of {conf} does not answer: {answer.stderr.strip()}")
    if os.geteuid() != 0:
        # Jobs are submitted as test users through sudo, and those users must be created.
        _no_slurm("the SLURM tests must run as root")
    os.environ["SLURM_CONF"] = conf  # for the code under test and the helpers' clients
    return conf


REQUIRE_ACCOUNTING_VAR = "FRACTAL_LIKE_REQUIRE_SLURM_ACCOUNTING"


@pytest.fixture(scope="session")
def slurm_accounting(slurm_conf: str) -> str:
    """The slurm.conf of a cluster whose jobs slurmdbd records (started with --accounting)."""
    text = Path(slurm_conf).read_text()
    if "accounting_storage/slurmdbd" not in text:
        reason = f"the cluster of {slurm_conf} has no slurmdbd"
        if os.environ.get(REQUIRE_ACCOUNTING_VAR) == "1":
            pytest.fail(f"{REQUIRE_ACCOUNTING_VAR}=1 but {reason}")
        pytest.skip(f"{reason} (scripts/slurm-dev-cluster.sh start --accounting)")
    return slurm_conf


@pytest.fixture(scope="session")
def slurm_user(slurm_conf: str) -> tuple[str, int, int]:
    """The test Unix user jobs run as: (name, uid, gid)."""
    return (ALICE, *ensure_unix_user(ALICE))


@pytest.fixture
def slurm_shared_dir(slurm_conf: str) -> Iterator[Path]:
    """A fresh folder under /tmp that test users can traverse (unlike tmp_path); removed after."""
    path = shared_dir("t")
    yield path
    remove_shared_dir(path)


REQUIRE_SSH_VAR = "FRACTAL_LIKE_REQUIRE_SSH"


def _no_ssh(reason: str) -> NoReturn:
    """Skip, or fail when CI requires sshd, so that a green CI run means these tests ran."""
    if os.environ.get(REQUIRE_SSH_VAR) == "1":
        pytest.fail(f"{REQUIRE_SSH_VAR}=1 but {reason}")
    pytest.skip(f"no SSH server: {reason} (apt-get install openssh-server)")


@pytest.fixture(scope="session")
def ssh_server() -> Iterator[SshServer]:
    """A real sshd on 127.0.0.1 (this worker's own) that lets the SLURM test user in by key."""
    if not Path(SSHD).is_file():
        _no_ssh(f"{SSHD} is missing")
    if os.geteuid() != 0:
        _no_ssh("the SSH tests must run as root (they start sshd and create a test user)")
    folder = shared_dir("ssh")
    server = start_sshd(folder, ALICE)
    yield server
    server.stop()
    remove_shared_dir(folder)
