"""Helpers for task-collection tests: wheels built once per session, an offline resource,
and a collector run until activities end."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fractal_like.config import Settings
from fractal_like.db import make_async_engine
from fractal_like.models import TaskGroupActivity
from fractal_like.runner.claims import new_runner_id
from fractal_like.runner.collection.collector import Collector
from fractal_like.runner.server_files import private_paths

from .helpers import USER_PASSWORD, ApiClient, UserClient, expect, login

TASKS_PKG = Path(__file__).parent / "tasks_pkg"
PKG_NAME = "fractal-like-test-tasks"
PKG_VERSION = "0.1.0"
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
FINAL = ("OK", "failed")


@dataclass(frozen=True)
class Wheels:
    """A folder usable as `pip --find-links`, and the wheels in it."""

    folder: Path
    tasks: Path  # built from tests/support/tasks_pkg by its own build backend
    no_manifest: Path  # a package without __FRACTAL_MANIFEST__.json
    helpers: tuple[Path, Path]  # tiny packages to pin before and after the package


def _write_wheel(folder: Path, name: str, version: str, files: dict[str, str]) -> Path:
    """A minimal valid wheel (pure Python) with these files and its dist-info."""
    dist = f"{name.replace('-', '_')}-{version}"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    wheel = (
        "Wheel-Version: 1.0\nGenerator: fractal-like-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    )
    contents = {**files, f"{dist}.dist-info/METADATA": metadata, f"{dist}.dist-info/WHEEL": wheel}
    record = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}.dist-info/RECORD,,")
    contents[f"{dist}.dist-info/RECORD"] = "\n".join(record) + "\n"
    target = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as archive:
        for path, text in contents.items():
            archive.writestr(path, text)
    return target


@pytest.fixture(scope="session", name="wheels")
def wheels_fixture(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    """Built once per test session (per xdist worker): the test package's real wheel."""
    base = tmp_path_factory.mktemp("wheels")
    source = base / "src"
    # A copy, so the build's egg-info and build/ never land in the source tree.
    shutil.copytree(
        TASKS_PKG, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    folder = base / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            "--wheel-dir",
            str(folder),
            str(source),
        ],
        check=True,
        timeout=120,
    )
    (tasks,) = folder.glob("fractal_like_test_tasks-*.whl")
    no_manifest = _write_wheel(
        folder, "fl-no-manifest", "1.0", {"fl_no_manifest/__init__.py": "VALUE = 1\n"}
    )
    helpers = (
        _write_wheel(folder, "fl-pin-helper", "1.0", {"fl_pin_helper.py": "VALUE = 1\n"}),
        _write_wheel(folder, "fl-pin-after", "1.0", {"fl_pin_after.py": "VALUE = 2\n"}),
    )
    return Wheels(folder, tasks, no_manifest, helpers)


def python_config(wheels: Wheels, **changes: Any) -> dict[str, Any]:
    """An offline resource: pip only looks into the wheels folder, never at an index."""
    config: dict[str, Any] = {
        "default_version": PYTHON_VERSION,
        "versions": {PYTHON_VERSION: sys.executable},
        "pip_extra_args": ["--no-index", "--find-links", str(wheels.folder)],
    }
    config.update(changes)
    return config


def collection_user(api: ApiClient, wheels: Wheels, **config: Any) -> tuple[UserClient, Path]:
    """A new user whose profile is on a local resource configured with `python_config`;
    and the resource's tasks folder."""
    name = f"collect-{len(api.admin.get('/admin/v2/resource/').json()) + 1}"
    resource = expect(
        api.admin.post(
            "/admin/v2/resource/",
            json={
                "name": name,
                "type": "local",
                "jobs_local_dir": str(api.tmp_path / name / "jobs"),
                "tasks_local_dir": str(api.tmp_path / name / "tasks"),
                "tasks_python_config": python_config(wheels, **config),
            },
        ),
        201,
    )
    profile = expect(
        api.admin.post(
            f"/admin/v2/resource/{resource['id']}/profile/",
            json={"name": f"{name}-profile", "resource_type": "local"},
        ),
        201,
    )
    email = f"{name}@example.org"
    project_dir = api.tmp_path / f"{name}-data"
    project_dir.mkdir(parents=True)
    expect(
        api.admin.post(
            "/auth/register/",
            json={
                "email": email,
                "password": USER_PASSWORD,
                "project_dirs": [str(project_dir)],
                "profile_id": profile["id"],
            },
        ),
        201,
    )
    token = login(api.client, email, USER_PASSWORD)
    me = expect(
        api.client.get("/auth/current-user/", headers={"Authorization": f"Bearer {token}"}), 200
    )
    return UserClient(api.client, token, me), Path(resource["tasks_local_dir"])


def upload(user: UserClient, wheel: Path, query: str = "", **form: str) -> Any:
    """POST task/collect/pip/ with the wheel as `file`, as `fractal task collect x.whl` does."""
    files = {"file": (wheel.name, wheel.read_bytes(), "application/zip")}
    return user.post(f"/api/v2/task/collect/pip/{query}", data=form, files=files)


def run_collector(settings: Settings, activity_ids: list[int], timeout: float = 60.0) -> None:
    """Run a collector (as a runner does) until every activity is OK or failed."""

    async def go() -> None:
        engine = make_async_engine(settings.database_url)
        # Confined from the server's files, as a runner's collector is.
        collector = Collector(
            engine,
            new_runner_id(),
            poll_seconds=0.05,
            stale_after=30,
            private_paths=lambda: private_paths(settings),
        )
        task = asyncio.create_task(collector.run_forever())
        try:
            async with asyncio.timeout(timeout):
                while True:
                    async with engine.connect() as connection:
                        rows = (
                            await connection.execute(
                                select(TaskGroupActivity.id, TaskGroupActivity.status).where(  # type: ignore[call-overload]
                                    TaskGroupActivity.id.in_(activity_ids)  # type: ignore[union-attr]
                                )
                            )
                        ).all()
                    if len(rows) == len(activity_ids) and all(row[1] in FINAL for row in rows):
                        return
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await engine.dispose()

    asyncio.run(go())


def collect_and_wait(settings: Settings, user: UserClient, response: Any) -> dict[str, Any]:
    """The activity of an accepted collection request, once the collector has ended it."""
    activity = expect(response, 202)
    assert activity["status"] == "pending" and activity["action"] == "collect"
    run_collector(settings, [activity["id"]])
    return expect(user.get(f"/api/v2/task-group/activity/{activity['id']}/"), 200)
