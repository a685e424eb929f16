"""Admin job routes (/admin/v2/job/): every filter, show, patch, stop, download; superusers only."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import select

from fractal_like.models import HistoryRun, HistoryUnit, Job
from fractal_like.services.job_files import WORKFLOW_LOG

from ..support.helpers import (
    ApiClient,
    UserClient,
    expect,
    make_dataset,
    make_project,
    make_task,
    make_workflow,
    run_in_session,
)

BASE = "/admin/v2/job/"


def _submit(user: UserClient, project_name: str = "project") -> dict[str, Any]:
    project = make_project(user, project_name)
    dataset = make_dataset(user, project["id"])
    task = make_task(
        user,
        f"convert-{project_name}",
        command_non_parallel="/bin/true",
        type="converter_non_parallel",
    )
    workflow = make_workflow(user, project["id"], [task["id"]])
    return expect(
        user.post(
            f"/api/v2/project/{project['id']}/job/submit/"
            f"?workflow_id={workflow['id']}&dataset_id={dataset['id']}",
            json={},
        ),
        202,
    )


def _ids(page: dict[str, Any]) -> list[int]:
    return [job["id"] for job in page["items"]]


def _set_running_with_history(db_url: str, job_id: int) -> None:
    """What a runner leaves behind when it dies mid-job: a claimed job, open run and units."""

    async def work(session: Any) -> None:
        job = await session.get(Job, job_id)
        job.status = "running"
        job.runner_id = "runner-that-died"
        run = HistoryRun(job_id=job_id, status="submitted", num_units_total=2, num_units_done=1)
        session.add(run)
        await session.flush()
        session.add(HistoryUnit(history_run_id=run.id, status="done"))
        session.add(HistoryUnit(history_run_id=run.id, status="submitted"))
        await session.commit()

    run_in_session(db_url, work)


def _history_of(db_url: str, job_id: int) -> tuple[list[Any], list[str]]:
    async def work(session: Any) -> tuple[list[Any], list[str]]:
        runs = (await session.exec(select(HistoryRun).where(HistoryRun.job_id == job_id))).all()
        units = (
            await session.exec(
                select(HistoryUnit.status)
                .where(HistoryUnit.history_run_id.in_([run.id for run in runs]))
                .order_by(HistoryUnit.id)
            )
        ).all()
        return list(runs), list(units)

    return run_in_session(db_url, work)


def test_list_filters_and_pages(api: ApiClient, tmp_path: Path) -> None:
    alice, bob = api.new_user(), api.new_user()
    first = _submit(alice, "first")
    expect(alice.get(f"/api/v2/project/{first['project_id']}/job/{first['id']}/stop/"), 202)
    second = _submit(alice, "second")
    # Bob on a resource of his own, to filter by resource.
    other = expect(
        api.admin.post(
            "/admin/v2/resource/",
            json={
                "name": "other",
                "type": "local",
                "jobs_local_dir": str(tmp_path / "other-jobs"),
                "tasks_local_dir": str(tmp_path / "other-tasks"),
                "jobs_runner_config": {},
            },
        ),
        201,
    )
    profile = expect(
        api.admin.post(
            f"/admin/v2/resource/{other['id']}/profile/",
            json={"name": "other-profile", "resource_type": "local"},
        ),
        201,
    )
    expect(
        api.admin.patch(f"/auth/users/{bob.user['id']}/", json={"profile_id": profile["id"]}), 200
    )
    third = _submit(bob)
    admin = api.admin

    page = expect(admin.get(BASE), 200)
    assert page["total_count"] == 3 and page["current_page"] == 1 and page["page_size"] == 3
    assert _ids(page) == [third["id"], second["id"], first["id"]]  # newest first
    assert set(page["items"][0]) >= set(third)  # the user routes' JobRead, whole
    assert "stopped by user" in page["items"][2]["log"]

    def ids(**params: Any) -> list[int]:
        return _ids(expect(admin.get(BASE, params=params), 200))

    assert ids(id=second["id"]) == [second["id"]]
    assert ids(project_id=first["project_id"]) == [first["id"]]
    assert ids(dataset_id=third["dataset_id"]) == [third["id"]]
    assert ids(workflow_id=second["workflow_id"]) == [second["id"]]
    assert ids(status="failed") == [first["id"]]
    assert ids(status="submitted") == [third["id"], second["id"]]
    assert ids(status="done") == []
    assert ids(job_user_email=bob.user["email"]) == [third["id"]]
    assert ids(job_user_email="nobody@example.org") == []
    assert ids(project_owner_id=alice.user["id"]) == [second["id"], first["id"]]
    assert ids(project_owner_id=bob.user["id"]) == [third["id"]]
    assert ids(resource_id=other["id"]) == [third["id"]]
    assert ids(resource_id=other["id"] + 1000) == []
    assert ids(project_id=first["project_id"], status="submitted") == []

    # Timestamp bounds, with and without an offset (no offset means UTC).
    start = datetime.fromisoformat(second["start_timestamp"])
    assert ids(start_timestamp_min=start.isoformat()) == [third["id"], second["id"]]
    assert ids(start_timestamp_max=start.isoformat()) == [second["id"], first["id"]]
    naive = start.astimezone(UTC).replace(tzinfo=None)
    assert ids(start_timestamp_min=naive.isoformat(), start_timestamp_max=naive.isoformat()) == [
        second["id"]
    ]
    in_paris = start.astimezone(UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert ids(start_timestamp_min=in_paris.isoformat()) == [third["id"], second["id"]]
    ended = datetime.fromisoformat(page["items"][2]["end_timestamp"])
    assert ids(end_timestamp_min=(ended - timedelta(seconds=1)).isoformat()) == [first["id"]]
    assert ids(end_timestamp_max=(ended - timedelta(seconds=1)).isoformat()) == []
    assert ids(end_timestamp_max=(ended + timedelta(seconds=1)).isoformat()) == [first["id"]]

    # log=false leaves the log out; pages.
    assert all(job["log"] is None for job in expect(admin.get(BASE + "?log=false"), 200)["items"])
    paged = expect(admin.get(BASE, params={"page": 2, "page_size": 2}), 200)
    assert (paged["current_page"], paged["page_size"], paged["total_count"]) == (2, 2, 3)
    assert _ids(paged) == [first["id"]]
    assert _ids(expect(admin.get(BASE, params={"page": 5, "page_size": 2}), 200)) == []

    # Bad filters are 422s, never 500s.
    for params in (
        {"id": 0},
        {"id": "x"},
        {"status": "sleeping"},
        {"job_user_email": "not-an-email"},
        {"start_timestamp_min": "yesterday"},
        {"end_timestamp_max": "0001-01-01T00:00:00+23:00"},
        {"page": 0},
        {"page_size": 0},
        {"page": 2},
        {"log": "maybe"},
    ):
        expect(admin.get(BASE, params=params), 422)


def test_show_patch_stop_download(api: ApiClient, db_url: str) -> None:
    alice = api.new_user()
    job = _submit(alice)
    url = f"{BASE}{job['id']}/"
    admin = api.admin

    shown = expect(admin.get(url), 200)
    assert shown["id"] == job["id"] and shown["user_email"] == alice.user["email"]
    Path(job["working_dir"], WORKFLOW_LOG).write_text("task 0 started\n")
    assert expect(admin.get(url, params={"show_tmp_logs": True}), 200)["log"] == (
        "task 0 started\n"
    )
    expect(admin.get(f"{BASE}999999/"), 404)
    expect(admin.get(f"{BASE}0/"), 422)

    # Only `failed`, only on a job that has not ended.
    expect(admin.patch(url, json={"status": "done"}), 422)
    expect(admin.patch(url, json={"status": "submitted"}), 422)
    expect(admin.patch(url, json={"status": "sleeping"}), 422)
    expect(admin.patch(url, json={}), 422)
    expect(admin.patch(url, json={"status": "failed", "extra": 1}), 422)
    expect(admin.patch(f"{BASE}999999/", json={"status": "failed"}), 404)
    assert expect(admin.get(url), 200)["status"] == "submitted"
    failed = expect(admin.patch(url, json={"status": "failed"}), 200)
    assert failed["status"] == "failed" and failed["end_timestamp"] is not None
    assert "manually marked as 'failed' by an admin" in failed["log"]
    refused = expect(admin.patch(url, json={"status": "failed"}), 422)
    assert "cannot be updated" in refused["detail"]
    # The dataset is free again.
    second = _submit(alice, "again")

    # A job left running by a dead runner: failed with its open history, let go of its runner.
    _set_running_with_history(db_url, second["id"])
    second_url = f"{BASE}{second['id']}/"
    assert expect(admin.patch(second_url, json={"status": "failed"}), 200)["status"] == "failed"
    runs, units = _history_of(db_url, second["id"])
    assert [(run.status, run.num_units_failed) for run in runs] == [("failed", 1)]
    assert units == ["done", "failed"]

    # Stop: like the user's route (a job not started ends at once; a running one is marked).
    third = _submit(alice, "third")
    stopped = expect(admin.get(f"{BASE}{third['id']}/stop/"), 202)
    assert stopped["status"] == "failed" and "stopped by user" in stopped["log"]
    expect(admin.get(f"{BASE}{third['id']}/stop/"), 422)
    fourth = _submit(alice, "fourth")
    _set_running_with_history(db_url, fourth["id"])
    # Fractal's clients know no `stopping`: a job being stopped still reads as live
    # (submitted, so the web page keeps polling it); our progress route says stopping.
    progress = f"/api/v2/project/{fourth['project_id']}/status/progress/"
    assert expect(admin.get(f"{BASE}{fourth['id']}/stop/"), 202)["status"] == "submitted"
    assert expect(admin.get(f"{BASE}{fourth['id']}/stop/"), 202)["status"] == "submitted"
    assert expect(alice.get(progress, params={"job_id": fourth["id"]}), 200)["status"] == "stopping"
    assert fourth["id"] in _ids(expect(admin.get(BASE, params={"status": "submitted"}), 200))
    expect(admin.get(f"{BASE}999999/stop/"), 404)

    # Download: the job's folder, zipped.
    Path(job["working_dir"], "0_task").mkdir()
    Path(job["working_dir"], "0_task", "0-log.txt").write_text("unit log\n")
    response = admin.get(url + "download/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-zip-compressed"
    assert f"job_{job['id']}_logs.zip" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        contents = {name: archive.read(name) for name in archive.namelist()}
    assert contents == {WORKFLOW_LOG: b"task 0 started\n", "0_task/0-log.txt": b"unit log\n"}
    expect(admin.get(f"{BASE}999999/download/"), 404)


def test_superusers_only(api: ApiClient) -> None:
    alice = api.new_user()
    job = _submit(alice)
    url = f"{BASE}{job['id']}/"
    calls = [
        ("GET", BASE, {}),
        ("GET", url, {}),
        ("PATCH", url, {"json": {"status": "failed"}}),
        ("GET", url + "stop/", {}),
        ("GET", url + "download/", {}),
    ]
    for method, path, kwargs in calls:
        assert api.client.request(method, path, **kwargs).status_code == 401, path
        # The job's own owner is no admin either.
        assert alice.request(method, path, **kwargs).status_code == 403, path
    assert (
        expect(alice.get(f"/api/v2/project/{job['project_id']}/job/{job['id']}/"), 200)["status"]
        == "submitted"
    )
    # A user made superuser may.
    boss = api.new_user(superuser=True)
    assert _ids(expect(boss.get(BASE), 200)) == [job["id"]]
