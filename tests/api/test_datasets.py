"""Datasets (zarr_dir rules) and images (add, update, remove, query)."""

from __future__ import annotations

import os
from pathlib import Path

from ..support.helpers import ApiClient, UserClient, expect, make_dataset, make_project


def _images_url(project: dict, dataset: dict) -> str:
    return f"/api/v2/project/{project['id']}/dataset/{dataset['id']}/images/"


def test_zarr_dir_rules(api: ApiClient, tmp_path: Path) -> None:
    user = api.new_user()
    root = user.user["project_dirs"][0]
    project = make_project(user, "My Project!")
    base = f"/api/v2/project/{project['id']}/dataset/"
    derived = make_dataset(user, project["id"], "Plate 1")
    assert (
        derived["zarr_dir"] == f"{root}/fractal/{project['id']}_my_project/{derived['id']}_plate_1"
    )
    assert derived["project"]["id"] == project["id"]

    given = expect(user.post(base, json={"name": "g", "zarr_dir": f"{root}/a/./b/"}), 201)
    assert given["zarr_dir"] == f"{root}/a/b"
    sub = expect(user.post(base, json={"name": "s", "zarr_subfolder": "x/y"}), 201)
    assert sub["zarr_dir"] == f"{root}/x/y"
    for bad in [
        {"name": "rel", "zarr_dir": "relative/path"},
        {"name": "up", "zarr_dir": f"{root}/../elsewhere"},
        {"name": "out", "zarr_dir": "/etc/somewhere"},
        {"name": "sub-up", "zarr_subfolder": "../x"},
        {"name": "pd", "project_dir": "/not/mine"},
        {"name": "both", "zarr_dir": f"{root}/z", "zarr_subfolder": "q"},
        {"name": "nul", "zarr_dir": f"{root}/a\u0000b"},
    ]:
        expect(user.post(base, json=bad), 422)
    # A symlink inside the project dir that points outside it is not a way out.
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, Path(root) / "link")
    expect(user.post(base, json={"name": "link", "zarr_dir": f"{root}/link/data"}), 422)
    # Nothing half-created by the refusals.
    names = [item["name"] for item in expect(user.get(base), 200)]
    assert names == ["Plate 1", "g", "s"]


def test_dataset_update_and_delete(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user)
    dataset = make_dataset(user, project["id"])
    url = f"/api/v2/project/{project['id']}/dataset/{dataset['id']}/"
    root = user.user["project_dirs"][0]
    assert expect(user.patch(url, json={"name": "renamed"}), 200)["name"] == "renamed"
    moved = expect(user.patch(url, json={"zarr_dir": f"{root}/moved"}), 200)
    assert moved["zarr_dir"] == f"{root}/moved"
    expect(user.post(_images_url(project, dataset), json={"zarr_url": f"{root}/moved/img"}), 201)
    expect(user.patch(url, json={"zarr_dir": f"{root}/again"}), 422)  # images pin it
    expect(user.patch(url, json={"name": None}), 422)
    expect(user.patch(url, json={"project_id": 2}), 422)
    other = api.new_user()
    expect(other.get(url), 403)
    expect(other.delete(url), 403)
    second_project = make_project(user, "second")
    expect(user.get(f"/api/v2/project/{second_project['id']}/dataset/{dataset['id']}/"), 422)
    expect(user.delete(url), 204)
    expect(user.get(url), 404)


def _fill(user: UserClient, project: dict, dataset: dict, count: int) -> list[str]:
    urls = []
    for index in range(count):
        url = f"{dataset['zarr_dir']}/plate.zarr/B/{index:02d}/0"
        body = {
            "zarr_url": url,
            "attributes": {"well": f"B{index % 3}", "fov": index, "ratio": index / 2},
            "types": {"is_3D": index % 2 == 0},
        }
        expect(user.post(_images_url(project, dataset), json=body), 201)
        urls.append(url)
    return urls


def test_images_add_update_remove(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user)
    dataset = make_dataset(user, project["id"])
    url = _images_url(project, dataset)
    zarr_dir = dataset["zarr_dir"]
    created = expect(
        user.post(url, json={"zarr_url": f"{zarr_dir}/a", "attributes": {"well": "A01"}}), 201
    )
    assert created == {
        "zarr_url": f"{zarr_dir}/a",
        "origin": None,
        "attributes": {"well": "A01"},
        "types": {},
    }
    expect(user.post(url, json={"zarr_url": f"{zarr_dir}/a"}), 422)  # duplicate
    expect(user.post(url, json={"zarr_url": zarr_dir}), 422)  # not strictly inside
    expect(user.post(url, json={"zarr_url": "/elsewhere/b"}), 422)
    expect(user.post(url, json={"zarr_url": f"{zarr_dir}/c", "attributes": {"x": None}}), 422)
    expect(user.post(url, json={"zarr_url": f"{zarr_dir}/c", "attributes": {"x": [1]}}), 422)
    expect(user.post(url, json={"zarr_url": f"{zarr_dir}/c", "types": {"t": "yes"}}), 422)
    expect(user.post(url, json={"zarr_url": f"{zarr_dir}/c", "types": {'a"b': True}}), 422)

    updated = expect(
        user.patch(url, json={"zarr_url": f"{zarr_dir}/a", "types": {"is_3D": True}}), 200
    )
    assert updated["types"] == {"is_3D": True} and updated["attributes"] == {"well": "A01"}
    expect(user.patch(url, json={"zarr_url": f"{zarr_dir}/missing", "types": {}}), 404)
    # Unknown fields are ignored, as Fractal's image schemas do: origin cannot be patched.
    ignored = user.patch(url, json={"zarr_url": f"{zarr_dir}/a", "origin": "/x", "other": 1})
    assert expect(ignored, 200) == updated
    expect(user.delete(url, params={"zarr_url": f"{zarr_dir}/a"}), 204)
    expect(user.delete(url, params={"zarr_url": f"{zarr_dir}/a"}), 404)
    other = api.new_user()
    expect(other.post(url, json={"zarr_url": f"{zarr_dir}/z"}), 403)
    expect(other.post(url + "query/", json={}), 403)


def test_image_query_filters_and_pages(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user)
    dataset = make_dataset(user, project["id"])
    urls = _fill(user, project, dataset, 9)
    query = _images_url(project, dataset) + "query/"

    everything = expect(user.post(query, json={}), 200)
    assert everything["total_count"] == 9 and everything["page_size"] == 9
    assert [image["zarr_url"] for image in everything["items"]] == urls
    assert everything["attributes"]["well"] == ["B0", "B1", "B2"]
    assert everything["attributes"]["fov"] == list(range(9))
    assert everything["types"] == ["is_3D"]

    wells = expect(user.post(query, json={"attribute_filters": {"well": ["B0", "B2"]}}), 200)
    assert [image["attributes"]["fov"] for image in wells["items"]] == [0, 2, 3, 5, 6, 8]
    both = expect(
        user.post(
            query,
            json={"attribute_filters": {"well": ["B0"]}, "type_filters": {"is_3D": True}},
        ),
        200,
    )
    assert [image["attributes"]["fov"] for image in both["items"]] == [0, 6]
    # A type missing from an image counts as False.
    not_done = expect(
        user.post(query, json={"type_filters": {"illumination_corrected": False}}), 200
    )
    assert not_done["total_count"] == 9
    numbers = expect(user.post(query, json={"attribute_filters": {"ratio": [1.5, 4]}}), 200)
    assert [image["attributes"]["fov"] for image in numbers["items"]] == [3, 8]
    # Values of another JSON type never match ("1" is not 1).
    assert (
        expect(user.post(query, json={"attribute_filters": {"fov": ["1"]}}), 200)["total_count"]
        == 0
    )
    single = expect(user.post(query, json={"zarr_url": urls[4]}), 200)
    assert [image["zarr_url"] for image in single["items"]] == [urls[4]]

    page2 = expect(user.post(query + "?page=2&page_size=4", json={}), 200)
    assert page2["current_page"] == 2 and page2["page_size"] == 4 and page2["total_count"] == 9
    assert [image["zarr_url"] for image in page2["items"]] == urls[4:8]
    last = expect(user.post(query + "?page=99&page_size=4", json={}), 200)
    assert last["current_page"] == 3 and [i["zarr_url"] for i in last["items"]] == urls[8:]
    expect(user.post(query + "?page=0", json={}), 422)
    expect(user.post(query + "?page_size=0", json={}), 422)
    expect(user.post(query, json={"attribute_filters": {"well": []}}), 422)
    expect(user.post(query, json={"attribute_filters": {"well": "B0"}}), 422)
    expect(user.post(query, json={"type_filters": {"is_3D": "yes"}}), 422)
