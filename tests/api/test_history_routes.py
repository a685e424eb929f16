"""Provenance routes under /api/v2/project/{pid}/status/: statuses, runs, units, images, logs.

The runner is what writes history; here the rows are written straight into the database
the app uses, next to a job submitted through the API, with log files in its folder.
"""

from __future__ import annotations

import asyncio
import os
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from fractal_like.config import Settings
from fractal_like.db import make_async_engine, make_session_factory
from fractal_like.models import HistoryImageCache, HistoryRun, HistoryUnit, Job
from fractal_like.schemas.history import IMAGE_STATUS_KEY

from ..support.helpers import ApiClient, UserClient, expect, make_dataset, make_project, make_task

T = TypeVar("T")
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def in_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in a session of the app's own database, and commit."""

    async def run() -> T:
        engine = make_async_engine(settings.database_url)
        try:
            async with make_session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


@dataclass
class World:
    user: UserClient
    pid: int
    dataset: dict[str, Any]
    wftasks: list[dict[str, Any]]
    job: dict[str, Any]
    urls: list[str]
    runs: dict[str, int] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"/api/v2/project/{self.pid}/status/"

    def query(self, wftask: int, **extra: Any) -> dict[str, Any]:
        ids = {"dataset_id": self.dataset["id"], "workflowtask_id": self.wftasks[wftask]["id"]}
        return ids | extra


def _world(api: ApiClient, settings: Settings) -> World:
    """Five images, a job on tasks 0-1 of a three-task workflow, and history rows of it.

    Task 0 (converter) made every image in one unit. Task 1 (parallel) ran twice: an
    early run with one done unit, then a failed run over four images (done, failed,
    running, submitted); the fifth image was never processed by task 1.
    """
    user = api.new_user()
    project = make_project(user)
    pid = project["id"]
    dataset = make_dataset(user, pid)
    convert = make_task(
        user, "convert", command_non_parallel="/bin/true", type="converter_non_parallel"
    )
    measure = make_task(user, "measure")
    segment = make_task(user, "segment")
    workflow = expect(user.post(f"/api/v2/project/{pid}/workflow/", json={"name": "wf"}), 201)
    wftasks = expect(
        user.post(
            f"/api/v2/project/{pid}/workflow/{workflow['id']}/wftask/",
            json=[{"task_id": task["id"]} for task in (convert, measure, segment)],
        ),
        201,
    )
    zarr_dir = dataset["zarr_dir"]
    urls = [f"{zarr_dir}/plate.zarr/{well}/0" for well in ("B02", "A01", "C03", "A02", "B01")]
    for number, url in enumerate(urls):
        body = {
            "zarr_url": url,
            "attributes": {"well": url.split("/")[-2], "plate": "plate.zarr"},
            "types": {"is_3D": number % 2 == 0},
        }
        expect(user.post(f"/api/v2/project/{pid}/dataset/{dataset['id']}/images/", json=body), 201)
    job = expect(
        user.post(
            f"/api/v2/project/{pid}/job/submit/"
            f"?workflow_id={workflow['id']}&dataset_id={dataset['id']}",
            json={"last_task_index": 1},
        ),
        202,
    )
    world = World(user, pid, dataset, wftasks, job, urls)
    folder = Path(job["working_dir"])
    (folder / "0_convert").mkdir()
    (folder / "1_measure").mkdir()
    (folder / "0_convert" / "log.txt").write_text("converted five images\n")
    (folder / "1_measure" / "0-log.txt").write_text("measured B02\n")
    (folder / "1_measure" / "early-log.txt").write_text("early run\n")
    os.symlink("/etc/passwd", folder / "1_measure" / "2-log.txt")

    async def write(session: AsyncSession) -> None:
        def run(name: str, wftask: int, task: dict, status: str, minutes: int, **counts: int):
            row = HistoryRun(
                job_id=job["id"],
                dataset_id=dataset["id"],
                workflowtask_id=wftasks[wftask]["id"],
                task_id=task["id"],
                workflowtask_dump={"id": wftasks[wftask]["id"], "order": wftask},
                task_group_dump={},
                status=status,
                timestamp_started=T0 + timedelta(minutes=minutes),
                **counts,
            )
            session.add(row)
            return name, row

        runs = [
            run("convert", 0, convert, "done", 0, num_units_total=1, num_units_done=1),
            # Added first but started later: order is by start time, not by id.
            run(
                "measure",
                1,
                measure,
                "failed",
                10,
                num_units_total=4,
                num_units_done=1,
                num_units_failed=1,
            ),
            run("early", 1, measure, "done", 5, num_units_total=1, num_units_done=1),
        ]
        await session.flush()
        world.runs = {name: row.id for name, row in runs}

        def unit(name: str, run_name: str, index: int, status: str, urls_: list[str], log: str):
            row = HistoryUnit(
                history_run_id=world.runs[run_name],
                index=index,
                kind="parallel",
                status=status,
                zarr_urls=urls_,
                logfile=log,
                error="boom" if status == "failed" else None,
                timestamp_started=T0 if status != "submitted" else None,
            )
            session.add(row)
            return name, row

        measured = folder / "1_measure"
        units = [
            unit("convert", "convert", 0, "done", urls, str(folder / "0_convert" / "log.txt")),
            unit("early", "early", 0, "done", [urls[0]], str(measured / "early-log.txt")),
            unit("m0", "measure", 0, "done", [urls[0]], str(measured / "0-log.txt")),
            unit("m1", "measure", 1, "failed", [urls[1]], "/etc/passwd"),
            unit("m2", "measure", 2, "running", [urls[2]], str(measured / "2-log.txt")),
            unit("m3", "measure", 3, "submitted", [urls[3]], str(measured / "3-log.txt")),
        ]
        await session.flush()
        world.units = {name: row.id for name, row in units}
        for url in urls:
            session.add(
                HistoryImageCache(
                    zarr_url=url,
                    dataset_id=dataset["id"],
                    workflowtask_id=wftasks[0]["id"],
                    latest_history_unit_id=world.units["convert"],
                )
            )
        for number, url in enumerate(urls[:4]):
            session.add(
                HistoryImageCache(
                    zarr_url=url,
                    dataset_id=dataset["id"],
                    workflowtask_id=wftasks[1]["id"],
                    latest_history_unit_id=world.units[f"m{number}"],
                )
            )

    in_db(settings, write)
    return world


def _set_job_status(settings: Settings, job_id: int, status: str) -> None:
    async def work(session: AsyncSession) -> None:
        job = (await session.exec(select(Job).where(Job.id == job_id))).one()
        job.status = status

    in_db(settings, work)


def test_workflow_status(api: ApiClient, settings: Settings) -> None:
    world = _world(api, settings)
    workflow_id = world.wftasks[0]["workflow_id"]
    url = f"{world.base}?dataset_id={world.dataset['id']}&workflow_id={workflow_id}"
    ids = [str(item["id"]) for item in world.wftasks]
    assert expect(world.user.get(url), 200) == {
        # A converter's images are counted, but its units are not images.
        ids[0]: {
            "status": "done",
            "num_available_images": None,
            "num_submitted_images": 0,
            "num_done_images": 5,
            "num_failed_images": 0,
        },
        # The latest run; a running unit counts as submitted.
        ids[1]: {
            "status": "failed",
            "num_available_images": 4,
            "num_submitted_images": 2,
            "num_done_images": 1,
            "num_failed_images": 1,
        },
        ids[2]: None,  # never run, and not part of the active job
    }

    # A new job on the same tasks: until it has runs of its own, they show as submitted.
    _set_job_status(settings, world.job["id"], "done")
    expect(
        world.user.post(
            f"/api/v2/project/{world.pid}/job/submit/"
            f"?workflow_id={workflow_id}&dataset_id={world.dataset['id']}",
            json={"first_task_index": 1},
        ),
        202,
    )
    shown = expect(world.user.get(url), 200)
    assert shown[ids[0]]["status"] == "done"
    assert shown[ids[1]] == {"status": "submitted"}
    assert shown[ids[2]] == {"status": "submitted"}

    # An empty workflow has no statuses; bad parameters are refused.
    empty = expect(
        world.user.post(f"/api/v2/project/{world.pid}/workflow/", json={"name": "e"}), 201
    )
    assert (
        expect(
            world.user.get(
                f"{world.base}?dataset_id={world.dataset['id']}&workflow_id={empty['id']}"
            ),
            200,
        )
        == {}
    )
    expect(world.user.get(f"{world.base}?dataset_id={world.dataset['id']}"), 422)
    expect(world.user.get(f"{world.base}?dataset_id=abc&workflow_id={workflow_id}"), 422)
    expect(world.user.get(f"{world.base}?dataset_id={2**40}&workflow_id={workflow_id}"), 422)
    expect(world.user.get(f"{world.base}?dataset_id=999999&workflow_id={workflow_id}"), 404)


def test_runs_and_units(api: ApiClient, settings: Settings) -> None:
    world = _world(api, settings)
    user = world.user
    runs = expect(user.get(f"{world.base}run/", params=world.query(1)), 200)
    assert [run["id"] for run in runs] == [world.runs["early"], world.runs["measure"]]
    early, measure = runs
    assert (early["num_done_units"], early["num_failed_units"], early["num_submitted_units"]) == (
        1,
        0,
        0,
    )
    assert measure["num_done_units"] == 1
    assert measure["num_failed_units"] == 1
    assert measure["num_submitted_units"] == 2
    assert measure["num_units_with_warnings"] == 0
    assert measure["status"] == "failed" and measure["job_id"] == world.job["id"]
    assert measure["version"] == "1.0.0"
    assert measure["workflowtask_dump"] == {"id": world.wftasks[1]["id"], "order": 1}
    assert measure["timestamp_started"] == (T0 + timedelta(minutes=10)).isoformat()
    assert expect(user.get(f"{world.base}run/", params=world.query(2)), 200) == []

    units_url = f"{world.base}run/{world.runs['measure']}/units/"
    everything = expect(user.get(units_url, params=world.query(1)), 200)
    assert (everything["total_count"], everything["page_size"], everything["current_page"]) == (
        4,
        4,
        1,
    )
    assert [item["status"] for item in everything["items"]] == [
        "done",
        "failed",
        "submitted",  # running, in Fractal's words
        "submitted",
    ]
    first = everything["items"][0]
    assert first["id"] == world.units["m0"]
    assert first["zarr_urls"] == [world.urls[0]]
    assert first["has_warnings"] is False
    assert everything["items"][1]["error"] == "boom"

    page = expect(user.get(units_url, params=world.query(1, page=2, page_size=3)), 200)
    assert (page["total_count"], page["page_size"], page["current_page"]) == (4, 3, 2)
    assert [item["id"] for item in page["items"]] == [world.units["m3"]]
    beyond = expect(user.get(units_url, params=world.query(1, page=5, page_size=3)), 200)
    assert beyond["items"] == [] and beyond["total_count"] == 4
    submitted = expect(user.get(units_url, params=world.query(1, unit_status="submitted")), 200)
    assert [item["id"] for item in submitted["items"]] == [world.units["m2"], world.units["m3"]]
    failed = expect(user.get(units_url, params=world.query(1, unit_status="failed")), 200)
    assert [item["id"] for item in failed["items"]] == [world.units["m1"]]

    expect(user.get(units_url, params=world.query(1, unit_status="running")), 422)
    expect(user.get(units_url, params=world.query(1, page=2)), 422)  # page without page_size
    expect(user.get(units_url, params=world.query(1, page=0)), 422)
    expect(user.get(units_url, params=world.query(1, page_size=0)), 422)
    # The run must be one of this workflow task on this dataset.
    expect(user.get(units_url, params=world.query(0)), 422)
    expect(user.get(f"{world.base}run/999999/units/", params=world.query(1)), 404)
    expect(user.get(f"{world.base}run/{2**40}/units/", params=world.query(1)), 422)


def test_images_with_status(api: ApiClient, settings: Settings) -> None:
    world = _world(api, settings)
    user = world.user
    url = f"{world.base}images/"
    page = expect(user.post(url, params=world.query(1)), 200)
    assert page["total_count"] == 5 and page["page_size"] == 5 and page["current_page"] == 1
    by_url = {item["zarr_url"]: item for item in page["items"]}
    assert [item["zarr_url"] for item in page["items"]] == sorted(world.urls)
    statuses = [by_url[url_]["attributes"][IMAGE_STATUS_KEY] for url_ in world.urls]
    assert statuses == ["done", "failed", "submitted", "submitted", "unset"]
    assert by_url[world.urls[0]]["attributes"]["well"] == "B02"
    assert by_url[world.urls[0]]["types"] == {"is_3D": True}
    assert page["attributes"][IMAGE_STATUS_KEY] == ["done", "submitted", "failed", "unset"]
    assert page["attributes"]["well"] == sorted(["B02", "A01", "C03", "A02", "B01"])
    assert page["types"] == ["is_3D"]

    # The converter's view of the same images: all done.
    converted = expect(user.post(url, params=world.query(0), json={}), 200)
    assert {item["attributes"][IMAGE_STATUS_KEY] for item in converted["items"]} == {"done"}

    def status_filter(*values: str, **extra: Any) -> dict[str, Any]:
        body = {"attribute_filters": {IMAGE_STATUS_KEY: list(values)}} | extra
        return expect(user.post(url, params=world.query(1), json=body), 200)

    unset = status_filter("unset")
    assert [item["zarr_url"] for item in unset["items"]] == [world.urls[4]]
    assert unset["total_count"] == 1
    ended = status_filter("done", "failed")
    assert sorted(item["zarr_url"] for item in ended["items"]) == sorted(world.urls[:2])
    assert status_filter("nonsense")["total_count"] == 0

    # Type filters narrow both the images and the summary of attributes.
    three_d = status_filter("submitted", "done", "unset", type_filters={"is_3D": True})
    assert sorted(item["zarr_url"] for item in three_d["items"]) == sorted(
        [world.urls[0], world.urls[2], world.urls[4]]
    )
    assert three_d["attributes"]["well"] == ["B01", "B02", "C03"]
    assert three_d["types"] == ["is_3D"]
    both = {"attribute_filters": {"well": ["A01", "A02", "C03"], IMAGE_STATUS_KEY: ["submitted"]}}
    found = expect(user.post(url, params=world.query(1), json=both), 200)
    assert sorted(item["zarr_url"] for item in found["items"]) == sorted(world.urls[2:4])

    # Pages, sorted by zarr_url.
    pages = [
        expect(user.post(url, params=world.query(1, page=number, page_size=2)), 200)
        for number in (1, 2, 3)
    ]
    assert [len(item["items"]) for item in pages] == [2, 2, 1]
    assert [image["zarr_url"] for item in pages for image in item["items"]] == sorted(world.urls)
    assert pages[2]["total_count"] == 5 and pages[2]["page_size"] == 2

    # Unknown fields are ignored, as Fractal's ImageQuery does.
    assert expect(user.post(url, params=world.query(1), json={"unknown": 1}), 200) == page
    expect(user.post(url, params=world.query(1), json={"type_filters": {"x": "yes"}}), 422)
    expect(user.post(url, params=world.query(1, page=2)), 422)
    expect(user.post(url, params={"dataset_id": world.dataset["id"]}), 422)


def test_unit_log(api: ApiClient, settings: Settings) -> None:
    world = _world(api, settings)
    user = world.user
    url = f"{world.base}unit-log/"

    def log(unit: str, run: str = "measure", wftask: int = 1) -> Any:
        params = world.query(
            wftask, history_run_id=world.runs[run], history_unit_id=world.units[unit]
        )
        return user.get(url, params=params)

    assert expect(log("m0"), 200) == "measured B02\n"
    assert expect(log("convert", run="convert", wftask=0), 200) == "converted five images\n"
    assert expect(log("early", run="early"), 200) == "early run\n"
    # Never a file outside the job's folder: not by its path, not through a link.
    for unit in ("m1", "m2"):
        text = expect(log(unit), 200)
        assert "root:" not in text and "outside the job's folder" in text
    missing = expect(log("m3"), 200)
    assert "not available" in missing and "does not exist" in missing
    # A folder that was zipped and removed still gives its logs.
    folder = Path(world.job["working_dir"])
    with zipfile.ZipFile(f"{folder}.zip", "w") as archive:
        archive.writestr("1_measure/3-log.txt", "from the zip\n")
    assert expect(log("m3"), 200) == "from the zip\n"

    # The unit must belong to the run, and the run to the workflow task and dataset.
    expect(log("convert", run="measure"), 422)
    expect(log("m0", run="measure", wftask=0), 422)
    params = world.query(1, history_run_id=world.runs["measure"], history_unit_id=999999)
    expect(user.get(url, params=params), 404)
    params = world.query(1, history_run_id=999999, history_unit_id=world.units["m0"])
    expect(user.get(url, params=params), 422)
    expect(user.get(url, params=world.query(1)), 422)


def test_unit_log_of_a_big_or_odd_file(api: ApiClient, settings: Settings) -> None:
    from fractal_like.services import history

    world = _world(api, settings)
    folder = Path(world.job["working_dir"])
    big = folder / "big.txt"
    big.write_bytes(b"x" * (history.MAX_LOG_BYTES + 10) + b"\nthe end\n")
    text = history.read_unit_log(str(big), str(folder), "unit")
    assert text.startswith("[… the first 19 bytes") and text.endswith("the end\n")
    os.mkfifo(folder / "fifo")
    assert "not a regular file" in history.read_unit_log("fifo", str(folder), "unit")
    (folder / "sub").mkdir()
    assert "not a regular file" in history.read_unit_log("sub", str(folder), "unit")
    assert "outside" in history.read_unit_log(".", str(folder), "unit")
    assert "outside" in history.read_unit_log("../x", str(folder), "unit")
    assert "No log file" in history.read_unit_log(None, str(folder), "unit")
    assert "no working folder" in history.read_unit_log("a.txt", None, "unit")


def test_job_progress(api: ApiClient, settings: Settings) -> None:
    world = _world(api, settings)
    user = world.user
    url = f"{world.base}progress/"
    progress = expect(user.get(url, params={"job_id": world.job["id"]}), 200)
    assert progress == {
        "job_id": world.job["id"],
        "status": "submitted",
        "tasks": [
            {
                "workflowtask_id": world.wftasks[0]["id"],
                "task_name": "convert",
                "order": 0,
                "status": "done",
                "num_units_total": 1,
                "num_units_done": 1,
                "num_units_failed": 0,
            },
            {
                "workflowtask_id": world.wftasks[1]["id"],
                "task_name": "measure",
                "order": 1,
                "status": "failed",  # the later run of the two
                "num_units_total": 4,
                "num_units_done": 1,
                "num_units_failed": 1,
            },
        ],
    }

    # A job whose tasks have not started yet.
    _set_job_status(settings, world.job["id"], "failed")
    workflow_id = world.wftasks[0]["workflow_id"]
    fresh = expect(
        user.post(
            f"/api/v2/project/{world.pid}/job/submit/"
            f"?workflow_id={workflow_id}&dataset_id={world.dataset['id']}",
            json={"first_task_index": 1},
        ),
        202,
    )
    waiting = expect(user.get(url, params={"job_id": fresh["id"]}), 200)
    assert [(task["task_name"], task["status"]) for task in waiting["tasks"]] == [
        ("measure", "pending"),
        ("segment", "pending"),
    ]
    _set_job_status(settings, fresh["id"], "failed")
    ended = expect(user.get(url, params={"job_id": fresh["id"]}), 200)
    assert {task["status"] for task in ended["tasks"]} == {"skipped"}

    expect(user.get(url, params={"job_id": 999999}), 404)
    expect(user.get(url), 422)
    other = make_project(user, "other")
    expect(
        user.get(
            f"/api/v2/project/{other['id']}/status/progress/", params={"job_id": world.job["id"]}
        ),
        404,
    )


def test_access(api: ApiClient, settings: Settings) -> None:
    world = _world(api, settings)
    workflow_id = world.wftasks[0]["workflow_id"]
    log_params = world.query(
        1, history_run_id=world.runs["measure"], history_unit_id=world.units["m0"]
    )
    calls = [
        ("GET", "", {"dataset_id": world.dataset["id"], "workflow_id": workflow_id}),
        ("GET", "run/", world.query(1)),
        ("GET", f"run/{world.runs['measure']}/units/", world.query(1)),
        ("POST", "images/", world.query(1)),
        ("GET", "unit-log/", log_params),
        ("GET", "progress/", {"job_id": world.job["id"]}),
    ]
    stranger = api.new_user()
    reader = api.new_user()
    expect(
        world.user.post(
            f"/api/v2/project/{world.pid}/access/",
            json={"email": reader.user["email"], "permissions": "r"},
        ),
        201,
    )
    for method, path, params in calls:
        full = world.base + path
        expect(stranger.request(method, full, params=params), 403)
        expect(api.client.request(method, full, params=params), 401)
        assert expect(reader.request(method, full, params=params), 200) == expect(
            world.user.request(method, full, params=params), 200
        )
        for project_id, code in ((999999, 404), (2**40, 422)):
            elsewhere = f"/api/v2/project/{project_id}/status/{path}"
            expect(world.user.request(method, elsewhere, params=params), code)

    # Objects of another project of the same user are refused with 422.
    other = make_project(world.user, "other")
    foreign_dataset = make_dataset(world.user, other["id"], "foreign")
    foreign_workflow = expect(
        world.user.post(f"/api/v2/project/{other['id']}/workflow/", json={"name": "f"}), 201
    )
    foreign_task = make_task(world.user, "foreign-task")
    foreign_wftask = expect(
        world.user.post(
            f"/api/v2/project/{other['id']}/workflow/{foreign_workflow['id']}/wftask/",
            json=[{"task_id": foreign_task["id"]}],
        ),
        201,
    )[0]
    base = world.base
    user = world.user
    expect(
        user.get(base, params={"dataset_id": foreign_dataset["id"], "workflow_id": workflow_id}),
        422,
    )
    expect(
        user.get(
            base, params={"dataset_id": world.dataset["id"], "workflow_id": foreign_workflow["id"]}
        ),
        422,
    )
    foreign_wftask_query = {
        "dataset_id": world.dataset["id"],
        "workflowtask_id": foreign_wftask["id"],
    }
    expect(user.get(base + "run/", params=foreign_wftask_query), 422)
    expect(user.post(base + "images/", params=foreign_wftask_query), 422)
    foreign_dataset_query = world.query(1) | {"dataset_id": foreign_dataset["id"]}
    expect(user.get(base + "run/", params=foreign_dataset_query), 422)
    expect(user.get(base + "run/", params=world.query(1) | {"workflowtask_id": 999999}), 404)
