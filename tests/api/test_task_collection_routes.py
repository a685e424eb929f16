"""The collection and lifecycle routes: checks, records, permissions, and restarts.

Nothing here runs pip, except where a collector is run on purpose (and then it does no
installation: the interrupted activities are only finished).
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from fractal_like.api.app import create_app
from fractal_like.config import Settings
from fractal_like.db import make_sync_engine
from fractal_like.models import TaskGroupActivity

from ..support.collection_support import (
    PKG_NAME,
    PKG_VERSION,
    PYTHON_VERSION,
    Wheels,
    collection_user,
    run_collector,
    upload,
    wheels_fixture,  # noqa: F401 (the `wheels` fixture)
)
from ..support.helpers import ApiClient, expect, make_dataset, make_project, make_task
from ..support.runner_support import build_workflow, submit

COLLECT = "/api/v2/task/collect/pip/"
ACTIVITY_KEYS = {
    "id",
    "user_id",
    "taskgroupv2_id",
    "timestamp_started",
    "timestamp_ended",
    "pkg_name",
    "version",
    "status",
    "action",
    "log",
}


def wheel_bytes(name: str = "pkg-1.0-py3-none-any.whl") -> tuple[str, bytes, str]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pkg-1.0.dist-info/METADATA", "Name: pkg\nVersion: 1.0\n")
    return (name, buffer.getvalue(), "application/zip")


def change_activity(settings: Settings, activity_id: int, **values: Any) -> None:
    engine = make_sync_engine(settings.database_url)
    try:
        with Session(engine) as session:
            activity = session.get(TaskGroupActivity, activity_id)
            assert activity is not None
            for key, value in values.items():
                setattr(activity, key, value)
            session.commit()
    finally:
        engine.dispose()


def test_collect_pip_refuses_bad_forms(api: ApiClient, wheels: Wheels) -> None:
    user, root = collection_user(api, wheels)
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "give a package name, or upload a wheel file"),
        ({"package": "  "}, "give a package name"),
        ({"package": "a/b"}, "is not a valid package name"),
        ({"package": "pkg==1.0"}, "is not a valid package name"),
        ({"package": "pkg; rm -rf ~"}, "is not a valid package name"),
        ({"package": "https://example.org/x.whl"}, "is not a valid package name"),
        ({"package": "-e"}, "is not a valid package name"),
        ({"package": "pkg", "package_version": ">=1"}, "is not a valid version"),
        ({"package": "pkg", "package_version": "1 --pre"}, "is not a valid version"),
        ({"package": "pkg", "package_extras": "a,b]"}, "is not a valid package name"),
        ({"package": "pkg", "package_extras": ","}, "package_extras is empty"),
        ({"package": "pkg", "python_version": "python3"}, "must look like 3.12"),
        ({"package": "pkg", "python_version": "3.4"}, "Python 3.4 is not available"),
        ({"package": "pkg", "pinned_package_versions_pre": "{"}, "is not valid JSON"),
        ({"package": "pkg", "pinned_package_versions_pre": "[1]"}, "must be a JSON object"),
        (
            {"package": "pkg", "pinned_package_versions_post": '{"numpy": ">=1"}'},
            "is not a valid version",
        ),
        (
            {"package": "pkg", "pinned_package_versions_post": '{"a b": "1"}'},
            "is not a valid package name",
        ),
        ({"package": "pkg", "pinned_package_versions_post": '{"numpy": 1}'}, "must be a string"),
        (
            {"package": "pkg", "pinned_package_versions_post": '{"np": "1", "NP": "2"}'},
            "pins 'np' twice",
        ),
    ]
    for form, message in cases:
        detail = expect(user.post(COLLECT, data=form), 422)["detail"]
        assert message in detail, (form, detail)
    expect(user.post(COLLECT, data={"package": "x" * 301}), 422)

    def sent(name: str = "pkg-1.0-py3-none-any.whl", content: bytes | None = None, **form: str):
        file = wheel_bytes(name)
        if content is not None:
            file = (name, content, "application/zip")
        return expect(user.post(COLLECT, data=form, files={"file": file}), 422)["detail"]

    assert "not both" in sent(package="pkg")
    assert "its version is in its name" in sent(package_version="1.0")
    assert "is not a wheel file name" in sent("pkg.zip")
    assert "is not a wheel file name" in sent("../pkg-1.0-py3-none-any.whl")
    assert "is not a valid wheel file name" in sent("pkg-py3-none-any.whl")
    assert "is not a usable wheel: it is not a zip archive" in sent(content=b"MZ not a zip")
    assert "the uploaded wheel file is empty" in sent(content=b"")
    assert "has no .dist-info/METADATA" in sent(content=_zip_without_metadata())
    # A refused upload leaves no folder and no record behind.
    assert not root.exists() or not any(root.iterdir())
    assert expect(user.get("/api/v2/task-group/"), 200) == []
    assert expect(user.get("/api/v2/task-group/activity/"), 200) == []
    expect(api.client.post(COLLECT, data={"package": "pkg"}), 401)


def _zip_without_metadata() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
    return buffer.getvalue()


def test_collect_pip_records_a_pending_collection(api: ApiClient, wheels: Wheels) -> None:
    user, root = collection_user(api, wheels)
    pins = json.dumps({"Numpy": "1.26.4"})
    activity = expect(
        user.post(
            f"{COLLECT}?private=true",
            data={
                "package": "My_Pkg",
                "package_version": "01.2",
                "package_extras": "B, a",
                "python_version": PYTHON_VERSION,
                "pinned_package_versions_pre": pins,
                "pinned_package_versions_post": "",  # empty fields count as not given
            },
        ),
        202,
    )
    assert set(activity) == ACTIVITY_KEYS
    assert (activity["status"], activity["action"]) == ("pending", "collect")
    assert (activity["pkg_name"], activity["version"]) == ("my-pkg", "1.2")
    assert activity["user_id"] == user.id and activity["timestamp_ended"] is None
    group = expect(user.get(f"/api/v2/task-group/{activity['taskgroupv2_id']}/"), 200)
    folder = root / str(user.id) / "my-pkg" / "1.2"
    assert group["origin"] == "pypi" and group["user_group_id"] is None
    assert group["path"] == str(folder) and folder.is_dir()
    assert group["venv_path"] == str(folder / "venv") and group["wheel_path"] is None
    assert group["pip_extras"] == "b,a" and group["python_version"] == PYTHON_VERSION
    assert group["pinned_package_versions_pre"] == {"numpy": "1.26.4"}
    assert group["pinned_package_versions"] == {} and group["task_list"] == []

    again = expect(user.post(COLLECT, data={"package": "my-pkg", "package_version": "1.2"}), 422)
    assert "already provides 'my-pkg 1.2'" in again["detail"]
    (root / str(user.id) / "my-pkg" / "2.0").mkdir()
    taken = expect(user.post(COLLECT, data={"package": "my-pkg", "package_version": "2.0"}), 422)
    assert "already exists on the server" in taken["detail"]

    # While it is pending, the group is busy.
    group_url = f"/api/v2/task-group/{group['id']}/"
    for action in ("deactivate", "delete"):
        busy = expect(user.post(f"{group_url}{action}/"), 422)
        assert f"activity {activity['id']} (collect) is pending" in busy["detail"]
    expect(user.delete(group_url), 422)

    # Only its owner (or a superuser) acts on the group; only its owner reads the activity
    # here, as in Fractal (a superuser reads it under /admin/v2/task-group/activity/).
    other = api.new_user()
    expect(other.get(f"/api/v2/task-group/activity/{activity['id']}/"), 403)
    expect(other.post(f"{group_url}deactivate/"), 403)
    expect(other.post("/api/v2/task-group/999999/deactivate/"), 404)
    expect(api.client.post(f"{group_url}deactivate/"), 401)
    boss = api.new_user(superuser=True)
    expect(boss.get(f"/api/v2/task-group/activity/{activity['id']}/"), 403)
    listed = expect(
        boss.get(f"/admin/v2/task-group/activity/?task_group_activity_id={activity['id']}"), 200
    )
    assert [item["id"] for item in listed["items"]] == [activity["id"]]

    # A wheel: its name and version come from its file name, and it is kept in the folder.
    wheel = expect(upload(user, wheels.no_manifest, "?private=true"), 202)
    assert (wheel["pkg_name"], wheel["version"]) == ("fl-no-manifest", "1.0")
    kept = root / str(user.id) / "fl-no-manifest" / "1.0" / wheels.no_manifest.name
    assert kept.read_bytes() == wheels.no_manifest.read_bytes()

    # A resource without tasks_python_config offers the Python that runs the server.
    plain = api.new_user()
    refused = expect(plain.post(COLLECT, data={"package": "pkg", "python_version": "3.4"}), 422)
    assert f"it only offers Python {PYTHON_VERSION}" in refused["detail"]
    accepted = expect(plain.post(COLLECT, data={"package": "pkg", "package_version": "1"}), 202)
    plain_group = expect(plain.get(f"/api/v2/task-group/{accepted['taskgroupv2_id']}/"), 200)
    assert plain_group["python_version"] == PYTHON_VERSION
    assert plain_group["user_group_id"] is not None  # shared with the default group


def test_upload_size_limit(settings: Settings, tmp_path: Path, wheels: Wheels) -> None:
    small = settings.model_copy(update={"MAX_REQUEST_BYTES": 2000})
    with TestClient(create_app(small)) as client:
        api = ApiClient(client, tmp_path)
        user, root = collection_user(api, wheels)
        big = ("pkg-1.0-py3-none-any.whl", b"x" * 5000, "application/zip")
        expect(user.post(COLLECT, files={"file": big}), 413)
        assert not root.exists() or not any(root.iterdir())


def test_lifecycle_of_task_groups_registered_by_hand(api: ApiClient, settings: Settings) -> None:
    # Their files are not ours: deactivate, reactivate and delete are done at once.
    user = api.new_user()
    task = make_task(user, "by-hand")
    group_id = task["taskgroupv2_id"]
    url = f"/api/v2/task-group/{group_id}/"
    done = expect(user.post(f"{url}deactivate/"), 202)
    assert (done["action"], done["status"]) == ("deactivate", "OK")
    assert done["timestamp_ended"] is not None and "active=False" in done["log"]
    assert expect(user.get(url), 200)["active"] is False
    assert expect(user.get("/api/v2/task/"), 200) == []
    assert "already inactive" in expect(user.post(f"{url}deactivate/"), 422)["detail"]
    boss = api.new_user(superuser=True)
    assert expect(boss.post(f"{url}reactivate/"), 202)["status"] == "OK"
    assert expect(user.get(url), 200)["active"] is True
    assert "already active" in expect(user.post(f"{url}reactivate/"), 422)["detail"]
    other = api.new_user()
    expect(other.post(f"{url}delete/"), 403)

    # In use: a submitted job blocks deactivation, a workflow blocks deletion.
    project = make_project(user)
    dataset = make_dataset(user, project["id"])
    converter = make_task(
        user, "convert", command_non_parallel="/bin/true", type="converter_non_parallel"
    )
    workflow = build_workflow(user, project["id"], [(converter, {}), (task, {})])
    job = submit(user, project["id"], workflow["id"], dataset["id"])
    blocked = expect(user.post(f"{url}deactivate/"), 422)
    assert f"job {job['id']} (submitted)" in blocked["detail"]
    used = expect(user.post(f"{url}delete/"), 422)["detail"]
    assert f"workflow {workflow['name']!r} (id {workflow['id']}) of project {project['id']}" in used

    alone = make_task(user, "alone")
    deleted = expect(user.post(f"/api/v2/task-group/{alone['taskgroupv2_id']}/delete/"), 202)
    assert (deleted["status"], deleted["taskgroupv2_id"]) == ("OK", None)
    expect(user.get(f"/api/v2/task-group/{alone['taskgroupv2_id']}/"), 404)
    shown = expect(user.get(f"/api/v2/task-group/activity/{deleted['id']}/"), 200)
    assert shown["action"] == "delete"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_interrupted_activities_are_finished(
    api: ApiClient, settings: Settings, wheels: Wheels
) -> None:
    user, root = collection_user(api, wheels)
    folder = root / str(user.id) / PKG_NAME / PKG_VERSION
    # A collection whose runner died on this host: undone and failed, with the reason.
    first = expect(upload(user, wheels.tasks), 202)
    assert (folder / wheels.tasks.name).is_file()
    dead = f"{socket.gethostname()}:{_dead_pid()}:gone"
    change_activity(
        settings, first["id"], status="ongoing", runner_id=dead, runner_heartbeat=datetime.now(UTC)
    )
    run_collector(settings, [first["id"]])
    failed = expect(user.get(f"/api/v2/task-group/activity/{first['id']}/"), 200)
    assert failed["status"] == "failed" and failed["taskgroupv2_id"] is None
    assert "interrupted: the server or runner doing this collect stopped" in failed["log"]
    assert not folder.exists()
    expect(user.get(f"/api/v2/task-group/{first['taskgroupv2_id']}/"), 404)

    # A deactivation whose runner (on another host) went silent: done again.
    second = expect(upload(user, wheels.tasks), 202)
    change_activity(settings, second["id"], status="OK")
    group_url = f"/api/v2/task-group/{second['taskgroupv2_id']}/"
    deactivation = expect(user.post(f"{group_url}deactivate/"), 202)
    silent = datetime.now(UTC) - timedelta(hours=1)
    change_activity(
        settings,
        deactivation["id"],
        status="ongoing",
        runner_id="elsewhere.example.org:1:x",
        runner_heartbeat=silent,
    )
    run_collector(settings, [deactivation["id"]])
    resumed = expect(user.get(f"/api/v2/task-group/activity/{deactivation['id']}/"), 200)
    assert resumed["status"] == "OK", resumed["log"]
    assert "doing it again" in resumed["log"]
    assert expect(user.get(group_url), 200)["active"] is False
