"""Real workflows of every task type, run by a real runner with real task processes."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import zipfile
from pathlib import Path

from sqlalchemy import create_engine, text

from fractal_like.config import Settings
from fractal_like.db import sync_url

from ..support.helpers import ApiClient, expect, make_dataset, make_project
from ..support.runner_support import (
    build_workflow,
    collect_test_tasks,
    images,
    new_scene,
    run_until_final,
    submit,
)


def _history(settings: Settings, job_id: int) -> tuple[list[tuple], list[tuple]]:
    engine = create_engine(sync_url(settings.database_url))
    with engine.connect() as connection:
        runs = connection.execute(
            text(
                "SELECT workflowtask_id, status, num_units_total, num_units_done, num_units_failed "
                "FROM historyrun WHERE job_id = :j ORDER BY id"
            ),
            {"j": job_id},
        ).all()
        units = connection.execute(
            text(
                "SELECT u.kind, u.status, u.zarr_urls, u.logfile FROM historyunit u "
                "JOIN historyrun r ON r.id = u.history_run_id WHERE r.job_id = :j ORDER BY u.id"
            ),
            {"j": job_id},
        ).all()
    engine.dispose()
    return list(runs), list(units)


def test_workflow_of_every_task_type(api: ApiClient, settings: Settings) -> None:
    user = api.new_user()
    tasks = collect_test_tasks(user)
    project = make_project(user)
    dataset = make_dataset(user, project["id"])
    pid, did = project["id"], dataset["id"]
    workflow = build_workflow(
        user,
        pid,
        [
            (tasks["create_images"], {"args_non_parallel": {"num_images": 3}}),
            (tasks["measure_intensity"], {"args_parallel": {"threshold": 7}}),
            (tasks["project_to_2d"], {}),
            (tasks["illumination_correction"], {"args_non_parallel": {"suffix": "flat"}}),
            (tasks["aggregate"], {}),
            (tasks["create_images_compound"], {"args_non_parallel": {"num_images": 2}}),
        ],
    )
    job = submit(user, pid, workflow["id"], did)
    assert run_until_final(settings, [job["id"]]) == {job["id"]: "done"}
    shown = expect(user.get(f"/api/v2/project/{pid}/job/{job['id']}/"), 200)
    assert shown["status"] == "done" and shown["end_timestamp"]
    assert "Job done." in shown["log"] and shown["executor_error_log"] is None

    zarr_dir = Path(dataset["zarr_dir"])
    all_images = {image["zarr_url"]: image for image in images(user, pid, did)}
    originals = sorted(url for url in all_images if "/plate.zarr/" in url and url.endswith("/0"))
    assert len(originals) == 3
    for url in originals:
        image = all_images[url]
        assert image["attributes"]["measured"] is True  # merged by measure_intensity
        assert image["types"] == {"is_3D": True}
        assert (Path(url) / "measurement.json").exists()
        assert (Path(url) / "runs.log").read_text().count("measure_intensity") == 1
        projected = all_images[f"{url}_mip"]
        assert projected["origin"] == url
        assert projected["types"]["is_3D"] is False  # the task's output_types
        assert projected["types"]["illumination_corrected"] is True
        assert projected["attributes"]["corrected"] == "flat"
        assert projected["attributes"]["well"] == image["attributes"]["well"]  # from origin
    # The compound task ran on the 2D images only (project_to_2d's output type filter).
    for url in originals:
        assert "corrected" not in all_images[url]["attributes"]
    summary = json.loads((zarr_dir / "summary.json").read_text())
    assert sorted(summary["zarr_urls"]) == sorted(f"{url}_mip" for url in originals)
    # converter_compound: two more images, made by its compute units.
    compound_made = [url for url in all_images if "compound" in url]
    assert len(compound_made) == 2

    runs, units = _history(settings, job["id"])
    assert [row[1] for row in runs] == ["done"] * 6
    assert [(row[2], row[3], row[4]) for row in runs] == [
        (1, 1, 0),
        (3, 3, 0),
        (3, 3, 0),
        (4, 4, 0),
        (1, 1, 0),
        (3, 3, 0),
    ]
    assert all(status == "done" for _, status, _, _ in units)
    assert all(Path(logfile).exists() for *_, logfile in units)

    response = user.get(f"/api/v2/project/{pid}/job/{job['id']}/download/")
    assert response.headers["content-type"] == "application/x-zip-compressed"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
    assert "workflow.log" in names
    assert any(name.startswith("1_measure_intensity/par_000000-args.json") for name in names)
    assert any(name.endswith("-log.txt") for name in names)


def test_failing_unit_fails_the_job_fast(api: ApiClient, settings: Settings) -> None:
    scene = new_scene(api)
    job_id = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 6}}),
        ("fail", {"args_parallel": {"fail_on": "/A/1/", "message": "bad well"}}),
    )
    assert run_until_final(settings, [job_id])[job_id] == "failed"
    error = scene.job(job_id)["executor_error_log"]
    assert "task 1 'fail': unit 0" in error and "exited with code 1" in error
    assert "bad well" in error  # the task's own log, in plain view
    runs, _ = _history(settings, job_id)
    assert runs[-1][1] == "failed"


def test_memory_limit_per_unit_fails_a_greedy_unit_plainly(
    api: ApiClient, settings: Settings
) -> None:
    scene = new_scene(api)
    assert api._resource_id is not None
    expect(
        api.admin.patch(
            f"/admin/v2/resource/{api._resource_id}/",
            json={"jobs_runner_config": {"memory_limit_per_unit_mb": 150}},
        ),
        200,
    )
    job_id = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 2}}),
        ("allocate_memory", {"args_parallel": {"megabytes": 10, "hold_seconds": 0}}),
        ("allocate_memory", {"args_parallel": {"megabytes": 400, "hold_seconds": 0}}),
    )
    assert run_until_final(settings, [job_id])[job_id] == "failed"
    error = scene.job(job_id)["executor_error_log"]
    assert "task 2 'allocate_memory'" in error, error  # the 10 MB task before it passed
    assert "it ran out of memory: the resource allows 150 MB per unit" in error
    assert "MemoryError" in error  # the unit's own log, in plain view


def test_task_without_input_images_fails_plainly(api: ApiClient, settings: Settings) -> None:
    scene = new_scene(api)
    job_id = scene.submit_steps(("measure_intensity", {}))
    assert run_until_final(settings, [job_id])[job_id] == "failed"
    assert "has no input images" in scene.job(job_id)["executor_error_log"]


def test_contract_violations_and_exit_codes(api: ApiClient, settings: Settings) -> None:
    user = api.new_user()
    tasks = collect_test_tasks(user)
    project = make_project(user)
    expected = {
        "bad_output": "not inside",
        "bad_output_extra_key": "breaks the contract",
        "exit_code": "exited with code 3",
    }
    jobs = {}
    for name in expected:
        dataset = make_dataset(user, project["id"], f"ds-{name}")
        workflow = build_workflow(
            user,
            project["id"],
            [(tasks["create_images"], {"args_non_parallel": {"num_images": 1}}), (tasks[name], {})],
        )
        jobs[name] = submit(user, project["id"], workflow["id"], dataset["id"])["id"]
    statuses = run_until_final(settings, list(jobs.values()))
    for name, job_id in jobs.items():
        assert statuses[job_id] == "failed"
        shown = expect(user.get(f"/api/v2/project/{project['id']}/job/{job_id}/"), 200)
        assert expected[name] in shown["executor_error_log"], (name, shown["executor_error_log"])


def test_no_output_means_inputs_updated(api: ApiClient, settings: Settings) -> None:
    user = api.new_user()
    tasks = collect_test_tasks(user)
    expect(
        user.patch(
            f"/api/v2/task/{tasks['no_output']['id']}/", json={"output_types": {"seen": True}}
        ),
        200,
    )
    project = make_project(user)
    dataset = make_dataset(user, project["id"])
    workflow = build_workflow(
        user,
        project["id"],
        [
            (tasks["create_images"], {"args_non_parallel": {"num_images": 2}}),
            (tasks["no_output"], {}),
        ],
    )
    job = submit(user, project["id"], workflow["id"], dataset["id"])
    assert run_until_final(settings, [job["id"]])[job["id"]] == "done"
    found = images(user, project["id"], dataset["id"])
    assert [image["types"] for image in found] == [{"is_3D": True, "seen": True}] * 2


def test_stop_kills_running_units(api: ApiClient, settings: Settings) -> None:
    scene = new_scene(api)
    user = scene.user
    job_id = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 2}}),
        ("sleep", {"args_parallel": {"seconds": 60}}),
    )
    zarr_dir = Path(scene.dataset["zarr_dir"])
    base = f"/api/v2/project/{scene.project['id']}/job/{job_id}/"

    def stop_when_sleeping() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(zarr_dir.rglob("sleep.pid")):
            time.sleep(0.1)
        expect(user.get(base + "stop/"), 202)

    stopper = threading.Thread(target=stop_when_sleeping)
    stopper.start()
    started = time.monotonic()
    assert run_until_final(settings, [job_id])[job_id] == "failed"
    stopper.join()
    assert time.monotonic() - started < 30  # far less than the 60 s the units sleep
    shown = expect(user.get(base), 200)
    assert "stopped by user" in shown["log"] and shown["executor_error_log"] == "stopped by user"
    for pid_file in zarr_dir.rglob("sleep.pid"):
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, 0)
            alive = Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
        except ProcessLookupError:
            alive = False
        assert not alive, f"unit process {pid} survived the stop"
