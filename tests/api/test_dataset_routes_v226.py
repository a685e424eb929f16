"""Fractal 2.26's dataset and status routes: every dataset of a user, export and import,
the pre-submission checks on images (non-processed, verify-unique-types), image logs and
image warnings, from real jobs run by a real runner."""

from __future__ import annotations

import time
from typing import Any

from fractal_like.config import Settings
from fractal_like.models import LinkUserProject
from fractal_like.schemas.history import IMAGE_STATUS_KEY

from ..support.helpers import (
    ApiClient,
    UserClient,
    expect,
    make_dataset,
    make_project,
    run_in_session,
)
from ..support.runner_support import build_workflow, new_scene, run_until_final, submit


def _share(db_url: str, project_id: int, user: UserClient) -> None:
    """Give `user` read access to a project (straight in the database: sharing is not
    what these tests are about)."""

    async def work(session: Any) -> None:
        session.add(
            LinkUserProject(project_id=project_id, user_id=user.id, is_owner=False, permissions="r")
        )
        await session.commit()

    run_in_session(db_url, work)


def _add_images(user: UserClient, pid: int, dataset: dict[str, Any], count: int) -> list[str]:
    urls = []
    for index in range(count):
        url = f"{dataset['zarr_dir']}/plate.zarr/B/{index:02d}/0"
        body = {"zarr_url": url, "attributes": {"well": f"B{index:02d}"}, "types": {"is_3D": True}}
        expect(user.post(f"/api/v2/project/{pid}/dataset/{dataset['id']}/images/", json=body), 201)
        urls.append(url)
    return urls


# --- GET /api/v2/dataset/ ------------------------------------------------------------------


def test_every_dataset_of_a_user(api: ApiClient, db_url: str) -> None:
    alice, bob = api.new_user(), api.new_user()
    alpha = make_project(alice, "Alpha lab")
    beta = make_project(alice, "beta")
    plates = make_dataset(alice, alpha["id"], "plates")
    wells = make_dataset(alice, alpha["id"], "Wells")
    third = make_dataset(alice, beta["id"], "third")
    bobs_project = make_project(bob, "bob's")
    bobs = make_dataset(bob, bobs_project["id"], "shared with alice")
    make_dataset(bob, make_project(bob, "private")["id"], "bob only")
    _share(db_url, bobs_project["id"], alice)
    _add_images(alice, alpha["id"], plates, 2)
    expect(
        alice.patch(
            f"/api/v2/project/{alpha['id']}/dataset/{wells['id']}/", json={"is_starred": True}
        ),
        200,
    )

    page = expect(alice.get("/api/v2/dataset/"), 200)
    assert (page["current_page"], page["page_size"], page["total_count"]) == (1, 4, 4)
    # Starred first, then newest first.
    assert [item["id"] for item in page["items"]] == [
        wells["id"],
        bobs["id"],
        third["id"],
        plates["id"],
    ]
    by_id = {item["id"]: item for item in page["items"]}
    assert by_id[plates["id"]]["image_count"] == 2 and by_id[wells["id"]]["image_count"] == 0
    assert by_id[plates["id"]]["owner_email"] == alice.user["email"]
    assert by_id[bobs["id"]]["owner_email"] == bob.user["email"]
    assert by_id[plates["id"]]["project"]["name"] == "Alpha lab"
    assert by_id[wells["id"]]["is_starred"] is True
    assert by_id[plates["id"]]["zarr_dir"] == plates["zarr_dir"]

    def names(**params: Any) -> list[str]:
        return [
            item["name"]
            for item in expect(alice.get("/api/v2/dataset/", params=params), 200)["items"]
        ]

    assert names(only_owned=True) == ["Wells", "third", "plates"]
    assert names(project_name="ALP") == ["Wells", "plates"]
    assert names(dataset_name="well") == ["Wells"]
    assert names(dataset_name="%") == [] and names(project_name="_") == []
    assert names(project_name="bob", dataset_name="SHARED") == ["shared with alice"]
    second = expect(alice.get("/api/v2/dataset/", params={"page": 2, "page_size": 3}), 200)
    assert [item["id"] for item in second["items"]] == [plates["id"]]
    assert (second["current_page"], second["page_size"], second["total_count"]) == (2, 3, 4)

    # Bob sees his own, never Alice's.
    assert {item["name"] for item in expect(bob.get("/api/v2/dataset/"), 200)["items"]} == {
        "shared with alice",
        "bob only",
    }
    expect(api.client.get("/api/v2/dataset/"), 401)
    for bad in ({"page": 2}, {"page": 0}, {"page_size": 0}, {"dataset_name": "a\x00b"}):
        expect(alice.get("/api/v2/dataset/", params=bad), 422)


# --- export and import -----------------------------------------------------------------------


def test_export_and_import(api: ApiClient, db_url: str) -> None:
    alice, bob = api.new_user(), api.new_user()
    project = make_project(alice)
    pid = project["id"]
    dataset = make_dataset(alice, pid, "original")
    urls = _add_images(alice, pid, dataset, 3)
    expect(
        alice.patch(
            f"/api/v2/project/{pid}/dataset/{dataset['id']}/images/",
            json={"zarr_url": urls[1], "attributes": {"well": "B01", "ratio": 0.5, "ok": False}},
        ),
        200,
    )
    export_url = f"/api/v2/project/{pid}/dataset/{dataset['id']}/export/"
    exported = expect(alice.get(export_url), 200)
    assert exported["name"] == "original" and exported["zarr_dir"] == dataset["zarr_dir"]
    assert [image["zarr_url"] for image in exported["images"]] == urls
    assert exported["images"][1]["attributes"] == {"well": "B01", "ratio": 0.5, "ok": False}
    assert exported["images"][0]["types"] == {"is_3D": True}
    expect(bob.get(export_url), 403)
    expect(api.client.get(export_url), 401)
    expect(alice.get(f"/api/v2/project/{pid}/dataset/999999/export/"), 404)
    elsewhere = make_project(alice, "elsewhere")
    expect(alice.get(f"/api/v2/project/{elsewhere['id']}/dataset/{dataset['id']}/export/"), 422)

    # Imported as exported, with the legacy fields of older exports ignored.
    import_url = f"/api/v2/project/{elsewhere['id']}/dataset/import/"
    body = {**exported, "name": "copy", "filters": {"attributes": {}, "types": {}}, "history": []}
    created = expect(alice.post(import_url, json=body), 201)
    assert created["name"] == "copy" and created["zarr_dir"] == dataset["zarr_dir"]
    assert created["project_id"] == elsewhere["id"] and created["project"]["id"] == elsewhere["id"]
    copy_export = f"/api/v2/project/{elsewhere['id']}/dataset/{created['id']}/export/"
    assert expect(alice.get(copy_export), 200)["images"] == exported["images"]
    query = f"/api/v2/project/{elsewhere['id']}/dataset/{created['id']}/images/query/"
    page = expect(alice.post(query, json={"attribute_filters": {"well": ["B01"]}}), 200)
    assert [image["zarr_url"] for image in page["items"]] == [urls[1]]
    assert page["attributes"] == {"ok": [False], "ratio": [0.5], "well": ["B00", "B01", "B02"]}
    assert page["types"] == ["is_3D"]

    # Checked as creating a dataset and adding each image are; nothing made on a refusal.
    root = alice.user["project_dirs"][0]
    zarr_dir = f"{root}/imported"
    good = {"zarr_url": f"{zarr_dir}/a"}
    for bad in (
        {"name": "out", "zarr_dir": "/etc/elsewhere"},
        {"name": "relative", "zarr_dir": "relative/dir"},
        {"name": "up", "zarr_dir": f"{root}/../x"},
        {"name": "image out", "zarr_dir": zarr_dir, "images": [good, {"zarr_url": "/tmp/x"}]},
        {"name": "not below", "zarr_dir": zarr_dir, "images": [{"zarr_url": zarr_dir}]},
        {"name": "twice", "zarr_dir": zarr_dir, "images": [good, {"zarr_url": f"{zarr_dir}/a/"}]},
        {"name": "list", "zarr_dir": zarr_dir, "images": [{**good, "attributes": {"x": [1]}}]},
        {"name": "null", "zarr_dir": zarr_dir, "images": [{**good, "attributes": {"x": None}}]},
        {"name": "type", "zarr_dir": zarr_dir, "images": [{**good, "types": {"t": "yes"}}]},
        {
            "name": "huge",
            "zarr_dir": zarr_dir,
            "images": [{**good, "attributes": {"x": "y" * 2000}}],
        },
        {"name": "a\x00b", "zarr_dir": zarr_dir},
        {"name": "", "zarr_dir": zarr_dir},
        {"zarr_dir": zarr_dir},
        {"name": "no dir"},
    ):
        expect(alice.post(import_url, json=bad), 422)
    # A bad image is named by its place in the list, as FastAPI names body errors.
    second_bad = {"name": "n", "zarr_dir": zarr_dir, "images": [good, {"attributes": {}}]}
    refused = expect(alice.post(import_url, json=second_bad), 422)
    assert refused["detail"][0]["loc"] == ["body", "images", 1, "zarr_url"]
    listed = expect(alice.get(f"/api/v2/project/{elsewhere['id']}/dataset/"), 200)
    assert [item["name"] for item in listed] == ["copy"]
    expect(bob.post(import_url, json={"name": "intruder", "zarr_dir": zarr_dir}), 403)
    # A guest account reads what is shared with it, and imports nothing.
    guest = api.new_user()
    expect(api.admin.patch(f"/auth/users/{guest.id}/", json={"is_guest": True}), 200)
    _share(db_url, elsewhere["id"], guest)
    assert expect(guest.get(copy_export), 200)["images"] == exported["images"]
    assert [item["name"] for item in expect(guest.get("/api/v2/dataset/"), 200)["items"]] == [
        "copy"
    ]
    expect(guest.post(import_url, json={"name": "guest", "zarr_dir": zarr_dir}), 403)
    expect(api.client.post(import_url, json={"name": "anonymous", "zarr_dir": zarr_dir}), 401)
    expect(alice.post("/api/v2/project/999999/dataset/import/", json=body), 404)


def test_large_import_is_one_quick_transaction(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user)
    zarr_dir = f"{user.user['project_dirs'][0]}/large"
    images = [
        {
            "zarr_url": f"{zarr_dir}/plate.zarr/{index // 100}/{index % 100}/0",
            "attributes": {"row": index // 100, "fov": index % 7},
            "types": {"is_3D": index % 2 == 0},
        }
        for index in range(20_000)
    ]
    started = time.monotonic()
    created = expect(
        user.post(
            f"/api/v2/project/{project['id']}/dataset/import/",
            json={"name": "large", "zarr_dir": zarr_dir, "images": images},
        ),
        201,
    )
    assert time.monotonic() - started < 30
    query = f"/api/v2/project/{project['id']}/dataset/{created['id']}/images/query/"
    page = expect(
        user.post(query, params={"page_size": 10}, json={"attribute_filters": {"fov": [3]}}), 200
    )
    assert page["total_count"] == sum(1 for index in range(20_000) if index % 7 == 3)
    assert page["attributes"]["fov"] == list(range(7)) and page["types"] == ["is_3D"]
    listed = expect(user.get("/api/v2/dataset/"), 200)["items"]
    assert [(item["name"], item["image_count"]) for item in listed] == [("large", 20_000)]


# --- image bodies as Fractal's: unknown fields ignored ----------------------------------------


def test_image_bodies_ignore_unknown_fields(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user)
    dataset = make_dataset(user, project["id"])
    url = f"/api/v2/project/{project['id']}/dataset/{dataset['id']}/images/"
    image = {"zarr_url": f"{dataset['zarr_dir']}/a", "attributes": {"x": 1}, "legacy": {"k": 1}}
    created = expect(user.post(url, json=image), 201)
    assert created == {
        "zarr_url": f"{dataset['zarr_dir']}/a",
        "origin": None,
        "attributes": {"x": 1},
        "types": {},
    }
    page = expect(user.post(url + "query/", json={"zarr_url": created["zarr_url"], "flag": 1}), 200)
    assert [item["zarr_url"] for item in page["items"]] == [created["zarr_url"]]
    assert page["total_count"] == 1 and "images" not in page
    # The checks of what is kept stay: a NUL, a deep value, a bad filter.
    expect(user.post(url, json={**image, "zarr_url": f"{dataset['zarr_dir']}/b\x00"}), 422)
    expect(user.post(url + "query/", json={"type_filters": {"t": "yes"}, "flag": 1}), 422)


# --- pre-submission checks, image logs and warnings, from real jobs --------------------------


def test_checks_logs_and_flags_of_real_jobs(api: ApiClient, settings: Settings) -> None:
    # (Its name avoids the word the flag looks for: it is in the paths the logs print.)
    scene = new_scene(api)
    user, pid, did = scene.user, scene.project["id"], scene.dataset["id"]
    tasks = scene.tasks
    # Job 1: three images made, then measured (all done; their logs mention no warning).
    first = build_workflow(
        user,
        pid,
        [
            (tasks["create_images"], {"args_non_parallel": {"num_images": 3}}),
            (tasks["measure_intensity"], {}),
        ],
    )
    first = expect(user.get(f"/api/v2/project/{pid}/workflow/{first['id']}/"), 200)
    create_wft, measure_wft = (item["id"] for item in first["task_list"])
    job = submit(user, pid, first["id"], did)
    assert run_until_final(settings, [job["id"]]) == {job["id"]: "done"}
    urls = [
        item["zarr_url"]
        for item in expect(
            user.post(f"/api/v2/project/{pid}/dataset/{did}/images/query/", json={}), 200
        )["items"]
    ]
    assert len(urls) == 3 and "/A/1/" in urls[0]

    # Job 2: a task that fails on the first image with a warning in its log; the task after
    # it is not run.
    fail_args = {"fail_on": "/A/1/", "message": "Warning: well A/1 is out of focus"}
    second = build_workflow(
        user,
        pid,
        [(tasks["fail"], {"args_parallel": fail_args}), (tasks["measure_intensity"], {})],
    )
    second = expect(user.get(f"/api/v2/project/{pid}/workflow/{second['id']}/"), 200)
    fail_wft, after_fail_wft = (item["id"] for item in second["task_list"])
    job = submit(user, pid, second["id"], did, last_task_index=0)
    assert run_until_final(settings, [job["id"]]) == {job["id"]: "failed"}

    status_url = f"/api/v2/project/{pid}/status/images/"

    def status_page(wftask: int, **params: Any) -> dict[str, Any]:
        query = {"dataset_id": did, "workflowtask_id": wftask, **params}
        return expect(user.post(status_url, params=query, json={}), 200)

    measured = status_page(measure_wft, include_warnings=True)["items"]
    assert [item["has_warnings"] for item in measured] == [False, False, False]
    assert {item["attributes"][IMAGE_STATUS_KEY] for item in measured} == {"done"}
    assert {item["has_warnings"] for item in status_page(measure_wft)["items"]} == {None}
    failed = {
        item["zarr_url"]: item for item in status_page(fail_wft, include_warnings=True)["items"]
    }
    assert failed[urls[0]]["has_warnings"] is True
    assert failed[urls[0]]["attributes"][IMAGE_STATUS_KEY] == "failed"
    fail_status = {url: item["attributes"][IMAGE_STATUS_KEY] for url, item in failed.items()}
    # Only as many units' logs are read as the page holds.
    paged = status_page(fail_wft, include_warnings=True, page=1, page_size=1)
    assert [item["has_warnings"] for item in paged["items"]] == [True]

    # The log of the unit that last processed an image for a workflow task.
    log_url = f"/api/v2/project/{pid}/status/image-log/"

    def image_log(wftask: int, zarr_url: str, status: int = 200) -> Any:
        body = {"workflowtask_id": wftask, "dataset_id": did, "zarr_url": zarr_url}
        return expect(user.post(log_url, json=body), status)

    assert "Warning: well A/1 is out of focus" in image_log(fail_wft, urls[0])
    assert f"measure_intensity: {urls[1]}" in image_log(measure_wft, urls[1])
    assert "created image" in image_log(create_wft, urls[2])
    image_log(after_fail_wft, urls[0], 404)  # never run
    image_log(measure_wft, f"{urls[0]}/other", 404)
    other = api.new_user()
    body = {"workflowtask_id": fail_wft, "dataset_id": did, "zarr_url": urls[0]}
    expect(other.post(log_url, json=body), 403)
    expect(api.client.post(log_url, json=body), 401)
    for bad in (
        {"dataset_id": did, "zarr_url": urls[0]},
        {**body, "dataset_id": 0},
        {**body, "workflowtask_id": 2**40},
        {**body, "zarr_url": "a\x00b"},
    ):
        expect(user.post(log_url, json=bad), 422)
    elsewhere = make_dataset(user, make_project(user, "elsewhere")["id"], "elsewhere")
    expect(user.post(log_url, json={**body, "dataset_id": elsewhere["id"]}), 422)

    # Non-processed: the images the next task would get that `fail` did not process.
    def non_processed(
        wftask: int, workflow: int, filters: dict[str, Any], status: int = 200
    ) -> Any:
        url = f"/api/v2/project/{pid}/dataset/{did}/images/non-processed/"
        params = {"workflow_id": workflow, "workflowtask_id": wftask}
        return expect(user.post(url, params=params, json=filters), status)

    not_done = [url for url in urls if fail_status[url] != "done"]
    assert urls[0] in not_done
    assert non_processed(after_fail_wft, second["id"], {}) == not_done
    wells = {"attribute_filters": {"well": ["A02", "A03"]}, "ignored": True}
    assert non_processed(after_fail_wft, second["id"], wells) == [
        u for u in not_done if u != urls[0]
    ]
    assert non_processed(after_fail_wft, second["id"], {"type_filters": {"is_3D": False}}) == []
    assert non_processed(fail_wft, second["id"], {}) == []  # the first task
    assert non_processed(measure_wft, first["id"], {}) == []  # after a converter
    non_processed(after_fail_wft, first["id"], {}, 422)  # not a task of that workflow
    non_processed(after_fail_wft, second["id"], {"type_filters": {"is_3D": "no"}}, 422)
    url = f"/api/v2/project/{pid}/dataset/{did}/images/non-processed/"
    params = {"workflow_id": second["id"], "workflowtask_id": after_fail_wft}
    expect(other.post(url, params=params, json={}), 403)
    expect(api.client.post(url, params=params, json={}), 401)
    expect(user.post(url, params={"workflow_id": second["id"]}, json={}), 422)

    # Verify-unique-types: the types whose value differs among the selected images.
    images_url = f"/api/v2/project/{pid}/dataset/{did}/images/"
    unique_url = images_url + "verify-unique-types/"

    def non_unique(query: dict[str, Any] | None, wftask: int = measure_wft) -> Any:
        return expect(user.post(unique_url, params={"workflowtask_id": wftask}, json=query), 200)

    assert non_unique(None) == [] and non_unique({}) == []
    patch = {"zarr_url": urls[1], "types": {"is_3D": False, "mip": True}}
    expect(user.patch(images_url, json=patch), 200)
    assert non_unique(None) == ["is_3D", "mip"]
    assert non_unique({"type_filters": {"is_3D": True}}) == []
    assert non_unique({"attribute_filters": {"well": ["A01", "A02"]}}) == ["is_3D", "mip"]
    assert non_unique({"attribute_filters": {IMAGE_STATUS_KEY: ["done"]}}) == ["is_3D", "mip"]
    assert non_unique({"attribute_filters": {IMAGE_STATUS_KEY: ["unset"]}}) == []
    failed_only = {"attribute_filters": {IMAGE_STATUS_KEY: ["failed"]}, "extra": 1}
    assert non_unique(failed_only, fail_wft) == (
        ["is_3D", "mip"] if fail_status[urls[1]] == "failed" else []
    )
    expect(other.post(unique_url, params={"workflowtask_id": measure_wft}, json={}), 403)
    expect(api.client.post(unique_url, params={"workflowtask_id": measure_wft}), 401)
    expect(user.post(unique_url, json={}), 422)
    expect(user.post(unique_url, params={"workflowtask_id": 0}, json={}), 422)
    bad_filter = {"attribute_filters": {"well": "A01"}}
    expect(user.post(unique_url, params={"workflowtask_id": measure_wft}, json=bad_filter), 422)
