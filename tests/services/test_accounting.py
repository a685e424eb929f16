"""Accounting: the runner records every ended job; superusers query the records."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text

from fractal_like.config import Settings
from fractal_like.db import sync_url

from ..support.helpers import ApiClient, expect
from ..support.runner_support import new_scene, run_until_final
from ..support.slurm_scene import cleanup, slurm_scene

RECORDS = "/admin/v2/accounting/"
SLURM = "/admin/v2/accounting/slurm/"


def _records(api: ApiClient, body: dict[str, Any], **params: Any) -> dict[str, Any]:
    return expect(api.admin.post(RECORDS, json=body, params=params), 200)


def test_ended_jobs_are_recorded_and_queried(api: ApiClient, settings: Settings) -> None:
    scene = new_scene(api)
    done = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 3}}),
        ("measure_intensity", {}),
    )
    assert run_until_final(settings, [done])[done] == "done"
    other = new_scene(api)
    failed = other.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 2}}),
        ("fail", {"args_parallel": {"fail_on": None, "message": "no"}}),
    )
    assert run_until_final(settings, [failed])[failed] == "failed"

    page = _records(api, {})
    assert (page["current_page"], page["page_size"], page["total_count"]) == (1, 2, 2)
    first, second = page["items"]
    # One converter unit and 3 parallel ones; the 3 images the converter made.
    assert (first["user_id"], first["job_id"]) == (scene.user.id, done)
    assert (first["num_tasks"], first["num_new_images"]) == (1 + 3, 3)
    assert first["resource_id"] == api._resource_id and first["timestamp"].endswith("+00:00")
    # A failed job is billed too: every unit it made, and the images it created.
    assert (second["user_id"], second["job_id"]) == (other.user.id, failed)
    assert (second["num_tasks"], second["num_new_images"]) == (1 + 2, 2)

    def jobs(body: dict[str, Any], **params: Any) -> list[int]:
        return [item["job_id"] for item in _records(api, body, **params)["items"]]

    assert jobs({"user_id": other.user.id}) == [failed]
    assert jobs({"fractal_job_id": done}) == [done]
    assert jobs({"user_id": 9999}) == []
    assert jobs({"timestamp_min": first["timestamp"]}) == [done, failed]
    assert jobs({"timestamp_max": first["timestamp"]}) == [done]
    assert jobs({"timestamp_min": "2999-01-01T00:00:00Z"}) == []
    assert jobs({"unknown": 1}) == [done, failed]  # ignored, as Fractal does
    assert jobs({}, page=2, page_size=1) == [failed]
    # Local jobs submit no SLURM job.
    assert expect(api.admin.post(SLURM, json={}), 200) == []

    # The record is the bill: it stays when the job's project is deleted.
    project = scene.project["id"]
    expect(scene.user.delete(f"/api/v2/project/{project}/"), 204)
    assert jobs({"user_id": scene.user.id}) == [done]

    for bad in (
        {"timestamp_min": "2024-01-01T00:00:00"},  # no offset
        {"timestamp_max": "0001-01-01T00:00:00+05:00"},  # before year 1 in UTC
        {"user_id": 0},
        {"fractal_job_id": "x"},
        [],
    ):
        expect(api.admin.post(RECORDS, json=bad), 422)
        expect(api.admin.post(SLURM, json=bad), 422)
    expect(api.admin.post(RECORDS, json={}, params={"page": 2}), 422)
    expect(api.admin.post(SLURM, json={"resource_id": 0}), 422)
    expect(scene.user.post(RECORDS, json={}), 403)
    expect(scene.user.post(SLURM, json={}), 403)
    expect(api.client.post(RECORDS, json={}), 401)
    expect(api.client.post(SLURM, json={}), 401)


def _slurm_ids(settings: Settings, job_id: int) -> list[int]:
    engine = create_engine(sync_url(settings.database_url))
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT slurm_job_id FROM slurmjob WHERE job_id = :j"), {"j": job_id}
        ).all()
    engine.dispose()
    return sorted(int(row[0]) for row in rows)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_slurm_job_records_its_slurm_job_ids(
    api: ApiClient, settings: Settings, slurm_conf: str, slurm_user: tuple[str, int, int]
) -> None:
    scene = slurm_scene(api, slurm_user)
    try:
        job_id = scene.submit_steps(
            ("create_images", {"args_non_parallel": {"num_images": 2}}),
            ("measure_intensity", {}),
        )
        statuses = run_until_final(settings, [job_id], timeout=120)
        assert statuses[job_id] == "done", scene.job(job_id)["log"]
    finally:
        cleanup(scene)
    submitted = _slurm_ids(settings, job_id)
    assert submitted  # one sbatch per task at least
    assert expect(api.admin.post(SLURM, json={}), 200) == submitted
    assert expect(api.admin.post(SLURM, json={"fractal_job_id": job_id}), 200) == submitted
    assert expect(api.admin.post(SLURM, json={"user_id": scene.user.id}), 200) == submitted
    record = _records(api, {"fractal_job_id": job_id})["items"][0]
    resource = record["resource_id"]
    assert expect(api.admin.post(SLURM, json={"resource_id": resource}), 200) == submitted
    assert expect(api.admin.post(SLURM, json={"resource_id": resource + 1}), 200) == []
    assert expect(api.admin.post(SLURM, json={"timestamp_min": "2999-01-01T00:00:00Z"}), 200) == []
    assert (record["num_tasks"], record["num_new_images"]) == (1 + 2, 2)
