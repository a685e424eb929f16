"""Job efficiency on the real cluster: sacct's figures recorded once the SLURM jobs ended,
then read per job, per workflow task, as a per-task suggestion and as admin totals."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from fractal_like.config import Settings
from fractal_like.db import make_async_engine, sync_url
from fractal_like.runner.slurm.usage import parse_usage
from fractal_like.runner.slurm.usage_recorder import UsageRecorder

from ..support.helpers import ApiClient, expect
from ..support.runner_support import run_until_final
from ..support.slurm_scene import cleanup, slurm_scene

MIB = 1 << 20


def _record_all(settings: Settings, expected: int, timeout: float = 90.0) -> tuple[int, int]:
    """Run the recorder until `expected` SLURM jobs are recorded (slurmdbd lags a little),
    at least once; how many it recorded, and how many SSH connections it opened."""

    async def go() -> tuple[int, int]:
        engine = make_async_engine(settings.database_url)
        recorder = UsageRecorder(engine)
        recorded = 0
        deadline = time.monotonic() + timeout
        try:
            while True:
                recorded += await recorder.record_once()
                if recorded >= expected or time.monotonic() > deadline:
                    return recorded, recorder.slurm.ssh.connects
                await asyncio.sleep(1)
        finally:
            await recorder.slurm.close()
            await engine.dispose()

    return asyncio.run(go())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("transport", ["slurm_sudo", "slurm_ssh"])
def test_usage_of_every_slurm_job_is_recorded_and_summarised(
    api: ApiClient,
    slurm_conf: str,
    slurm_user: tuple[str, int, int],
    slurm_accounting: Any,
    settings: Settings,
    transport: str,
    request: pytest.FixtureRequest,
) -> None:
    over_ssh = transport == "slurm_ssh"
    ssh = request.getfixturevalue("ssh_server") if over_ssh else None
    scene = slurm_scene(api, slurm_user, ssh=ssh)
    try:
        job_id = scene.submit_steps(
            ("create_images", {"args_non_parallel": {"num_images": 3}}),
            # ~100 MB used by each unit under a 1 GB request
            (
                "allocate_memory",
                {
                    "args_parallel": {"megabytes": 80, "hold_seconds": 3},
                    "meta_parallel": {"mem": "1G"},
                },
            ),
        )
        assert run_until_final(settings, [job_id], timeout=180)[job_id] == "done"
        project = scene.project["id"]
        route = f"/api/v2/project/{project}/job/{job_id}/efficiency/"
        before = expect(scene.user.get(route), 200)
        slurm_jobs = before["slurm_jobs_pending"] + before["summary"]["slurm_jobs"]
        assert slurm_jobs >= 2  # one for create_images, at least one for allocate_memory

        recorded, connections = _record_all(settings, slurm_jobs)
        assert recorded == slurm_jobs
        # A slurm_ssh job's sacct runs on its login node, over one SSH connection.
        assert connections == (1 if over_ssh else 0)
        assert _record_all(settings, 1, timeout=0) == (0, 0)  # nothing recorded twice

        report = expect(scene.user.get(route), 200)
        assert report["slurm_jobs_pending"] == 0
        summary = report["summary"]
        assert summary["slurm_jobs"] == slurm_jobs
        assert summary["units"] == 1 + 3
        assert summary["allocated_cpu_hours"] > 0
        assert 0 < summary["cpu_efficiency"] <= 1.5
        assert len(report["workflow_tasks"]) == 2
        tasks = {entry["task_id"]: entry for entry in report["workflow_tasks"]}
        memory_task = tasks[scene.tasks["allocate_memory"]["id"]]
        assert memory_task["units"] == 3
        # 80 MiB touched by each unit, and the Python around it
        assert memory_task["memory_per_unit_max_bytes"] >= 80 * MIB
        assert 0 < memory_task["time_used_of_limit"] < 1
        # Each history unit links to its SLURM job's figures by the SLURM job id.
        engine = create_engine(sync_url(settings.database_url))
        with engine.connect() as connection:
            unit_jobs = set(
                connection.execute(
                    text(
                        "SELECT u.slurm_job_id FROM historyunit u JOIN historyrun r"
                        " ON r.id = u.history_run_id WHERE r.job_id = :j"
                    ),
                    {"j": job_id},
                ).scalars()
            )
        engine.dispose()
        assert unit_jobs == {job["slurm_job_id"] for job in report["slurm_jobs"]}
        for job in report["slurm_jobs"]:
            assert job["state"] == "COMPLETED"
            assert job["req_mem_bytes"] and job["time_limit_seconds"]

        wftask = memory_task["workflowtask_id"]
        workflow = expect(scene.user.get(f"/api/v2/project/{project}/workflow/"), 200)[0]
        per_wftask = expect(
            scene.user.get(
                f"/api/v2/project/{project}/workflow/{workflow['id']}/wftask/{wftask}/efficiency/"
            ),
            200,
        )
        assert per_wftask["units"] == 3 and per_wftask["workflowtask_id"] == wftask

        suggestion = expect(
            scene.user.get(
                f"/api/v2/task/{scene.tasks['allocate_memory']['id']}/slurm-suggestion/"
            ),
            200,
        )
        assert suggestion["runs"] == memory_task["slurm_jobs"]
        # the report says the request was mostly unused, and suggests a smaller mem
        assert memory_task["memory_efficiency"] < 0.3
        assert 80 * 1.2 <= int(suggestion["mem"].rstrip("M")) < 400
        assert suggestion["cpus_per_task"] == 1
        assert suggestion["time"] >= "00:01:00"

        # Another user sees none of it; only superusers see the totals.
        stranger = api.new_user()
        assert stranger.get(route).status_code == 403
        assert stranger.get("/admin/v2/accounting/usage/").status_code == 403
        totals = expect(api.admin.get("/admin/v2/accounting/usage/?group_by=user"), 200)
        mine = [entry for entry in totals if entry["user_id"] == scene.user.id]
        assert mine and mine[0]["slurm_jobs"] == slurm_jobs
        assert mine[0]["cpu_hours"] == pytest.approx(summary["cpu_hours"], rel=1e-3)
        exported = api.admin.get("/admin/v2/accounting/usage/?group_by=account&format=csv")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert sum(int(row["slurm_jobs"]) for row in rows) >= slurm_jobs
        later = expect(
            api.admin.get("/admin/v2/accounting/usage/?timestamp_min=2999-01-01T00:00:00Z"), 200
        )
        assert later == []
    finally:
        cleanup(scene)


def test_sacct_lines_read_as_seff_reads_them() -> None:
    """Steps carry MaxRSS; a step too short to be sampled has none; ReqMem per CPU scales."""
    from datetime import UTC, datetime

    text = "\n".join(
        [
            "41|COMPLETED|20|00:15.500|2||400M|10|lab|main|2026-12-06T00:10:20",
            "41.batch|COMPLETED|20|00:15.500|2|46472K|||||2026-12-06T00:10:20",
            "41.extern|COMPLETED|20|00:00:00|2|1024K|||||2026-12-06T00:10:20",
            "42|OUT_OF_MEMORY|3|01:02:03|1||100Mc|UNLIMITED||main|2026-12-06T00:10:29",
            "42.batch|OUT_OF_MEMORY|3|01:02:03|1||||||2026-12-06T00:10:29",
            "43|RUNNING|11|00:00:00|1||200M|1||main|Unknown",
            "44|COMPLETED|1|1-00:00:01|4||1G|5||main|2026-12-06T00:10:59",
            # a busy slurmdbd: the request not written yet, shortly after the end
            "45|COMPLETED|1|00:00:01|1||||lab|main|2026-12-06T00:11:00",
            "45.batch|COMPLETED|1|00:00:01|1|2048K|||||2026-12-06T00:11:00",
        ]
    )
    now = datetime(2026, 12, 6, 0, 11, 30).astimezone(UTC)
    usage = parse_usage(text, now)
    # 43 runs; 44 has no step yet and ended 31 s ago; 45 has no request yet
    assert set(usage) == {"41", "42"}
    assert usage["41"].max_rss_bytes == 46472 * 1024
    assert usage["41"].cpu_seconds == 15.5 and usage["41"].time_limit_seconds == 600
    assert usage["41"].account == "lab" and usage["41"].req_mem_bytes == 400 * MIB
    assert usage["42"].max_rss_bytes is None and usage["42"].time_limit_seconds is None
    assert usage["42"].cpu_seconds == 3723 and usage["42"].req_mem_bytes == 100 * MIB
    later = parse_usage(text, datetime(2026, 12, 6, 0, 20).astimezone(UTC))
    assert later["44"].cpu_seconds == 86401 and later["44"].req_mem_bytes == 1 << 30
    assert later["45"].req_mem_bytes is None  # recorded as it is, once the grace is over
