"""The derived image tables (summary, SQLite's attribute lookup) stay exactly right.

Whatever writes the images — the image routes, `apply_image_changes`, the migration
that fills the tables, `rebuild_image_index` — the tables must equal a recomputation
from the images themselves, and the queries answered from them must equal the
answers computed in Python from the images.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlmodel import select

from fractal_like.migrate import alembic_config, upgrade
from fractal_like.models import Image
from fractal_like.services import images as image_service
from fractal_like.services.image_updates import ImageChangeError, apply_image_changes
from fractal_like.services.images import filter_value_texts, value_text

from ..support.helpers import (
    ApiClient,
    UserClient,
    expect,
    make_dataset,
    make_project,
    run_in_session,
)


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


# ---------------------------------------------------------------- what the tables should hold


def _indexed(value: Any) -> bool:
    return isinstance(value, str | int | float) and value == value  # no None, list, NaN


def _images(url: str, dataset_id: int) -> list[tuple[int, str, dict[str, Any], dict[str, bool]]]:
    """(id, zarr_url, attributes, types) of every image of a dataset, in id order."""

    async def work(session: Any) -> Any:
        query = (
            select(Image.id, Image.zarr_url, Image.attributes, Image.types)
            .where(Image.dataset_id == dataset_id)
            .order_by(Image.id)
        )
        return [tuple(row) for row in (await session.exec(query)).all()]

    return run_in_session(url, work)


def _stored(url: str, dataset_id: int) -> tuple[Counter[Any], set[Any]]:
    """The summary rows {(kind, key, value): n} and the lookup rows of a dataset."""

    async def work(session: Any) -> Any:
        connection = await session.connection()
        summary = await connection.execute(
            text("SELECT kind, key, value, n FROM imagev2_summary WHERE dataset_id = :d"),
            {"d": dataset_id},
        )
        lookup = await connection.execute(
            text("SELECT key, value, image_id FROM imagev2_attribute WHERE dataset_id = :d"),
            {"d": dataset_id},
        )
        return (
            Counter({(kind, key, value): n for kind, key, value, n in summary}),
            {tuple(row) for row in lookup},
        )

    return run_in_session(url, work)


def _expected(url: str, dataset_id: int) -> tuple[Counter[Any], set[Any]]:
    """The same, recomputed from scratch from the images."""
    summary: Counter[Any] = Counter()
    lookup: set[Any] = set()
    for image_id, _url, attributes, types in _images(url, dataset_id):
        for key, value in attributes.items():
            if _indexed(value):
                summary["a", key, value_text(value)] += 1
                lookup.add((key, value_text(value), image_id))
        for key in types:
            summary["t", key, ""] += 1
    return summary, (lookup if _is_sqlite(url) else set())


def assert_tables_right(url: str, dataset_id: int) -> None:
    summary, lookup = _stored(url, dataset_id)
    expected_summary, expected_lookup = _expected(url, dataset_id)
    assert all(n > 0 for n in summary.values()), "no empty or negative counts are kept"
    assert summary == expected_summary
    assert lookup == expected_lookup


def _distinct(images: list[Any]) -> tuple[dict[str, list[Any]], list[str]]:
    """The summary a query returns, computed in Python from the images."""
    values: dict[str, list[Any]] = {}
    types: set[str] = set()
    for _id, _url, attributes, image_types in images:
        for key, value in attributes.items():
            if not _indexed(value):
                continue
            known = values.setdefault(key, [])
            if not any(type(v) is type(value) and v == value for v in known):
                known.append(value)
        types.update(image_types)
    for known in values.values():
        known.sort(key=lambda v: (type(v).__name__, v))
    return dict(sorted(values.items())), sorted(types)


def _same_value(a: Any, b: Any) -> bool:
    """Fractal's equality of attribute values: numbers by value, never a bool for a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    return a == b


def _passes(image: Any, type_filters: dict[str, bool], attribute_filters: dict[str, list]) -> bool:
    _id, _url, attributes, types = image
    if any(types.get(key, False) != wanted for key, wanted in type_filters.items()):
        return False
    return all(
        key in attributes and any(_same_value(attributes[key], value) for value in values)
        for key, values in attribute_filters.items()
    )


# ---------------------------------------------------------------- canonical values


def test_value_text_is_canonical_json() -> None:
    assert value_text("B03") == '"B03"'
    assert value_text('a"b\\c\u00e9') == '"a\\"b\\\\c\\u00e9"'
    assert value_text(True) == "true" and value_text(False) == "false"
    assert value_text(1) == "1" and value_text(-0) == "0"
    assert value_text(1.0) == "1.0" and value_text(0.5) == "0.5"
    # What PostgreSQL's jsonb gives back for these floats:
    assert value_text(1e20) == "100000000000000000000" == value_text(10**20)
    assert value_text(1e23) == "100000000000000000000000"
    assert value_text(-0.0) == "0.0"
    assert value_text(1e-7) == "1e-07" == value_text(json.loads("0.0000001"))
    with pytest.raises(ValueError):
        value_text(float("nan"))
    with pytest.raises(TypeError):
        value_text([1])
    # A filter value matches equal numbers of either kind, never a bool or a string.
    assert filter_value_texts(1) == ["1", "1.0"]
    assert filter_value_texts(2.0) == ["2", "2.0"]
    assert filter_value_texts(2.5) == ["2.5"]
    assert filter_value_texts(True) == ["true"]
    assert filter_value_texts("1") == ['"1"']


# ---------------------------------------------------------------- a random mix of writers

KEYS = ["well", "fov", "plate", "flag", "with space", 'q"uote']
VALUES: list[Any] = [
    "A01",
    "B02",
    'say "hi"',
    "back\\slash",
    "ünïcödé",
    "tab\there",
    "\U0001f600",
    "",
    "1",
    "true",
    0,
    1,
    2,
    -5,
    10**15,
    1.0,
    0.5,
    2.5,
    -3.25,
    1e-7,
    True,
    False,
]
TYPE_KEYS = ["is_3D", "illumination_corrected", "registered"]


def _random_attributes(rng: random.Random, route: bool) -> dict[str, Any]:
    # The routes refuse names with quotes (they are used as JSON paths); tasks may use them.
    keys = [key for key in KEYS if not (route and '"' in key)]
    return {key: rng.choice(VALUES) for key in rng.sample(keys, rng.randint(0, 4))}


def _random_types(rng: random.Random) -> dict[str, bool]:
    return {key: rng.random() < 0.5 for key in rng.sample(TYPE_KEYS, rng.randint(0, 3))}


class _Mix:
    def __init__(self, api: ApiClient, db_url: str, seed: int) -> None:
        self.url = db_url
        self.rng = random.Random(seed)
        self.user: UserClient = api.new_user()
        project = make_project(self.user)
        self.dataset = make_dataset(self.user, project["id"])
        self.id: int = self.dataset["id"]
        self.zarr_dir: str = self.dataset["zarr_dir"]
        self.route = f"/api/v2/project/{project['id']}/dataset/{self.id}/images/"
        self.serial = 0

    def urls(self) -> list[str]:
        page = expect(self.user.post(self.route + "query/", json={}), 200)
        return [image["zarr_url"] for image in page["items"]]

    def new_url(self) -> str:
        self.serial += 1
        return f"{self.zarr_dir}/plate.zarr/{self.serial}"

    def step(self) -> None:
        rng = self.rng
        urls = self.urls()
        action = rng.choice(["add", "add", "patch", "delete", "task", "task"])
        if action == "add" or not urls:
            body = {
                "zarr_url": self.new_url(),
                "attributes": _random_attributes(rng, route=True),
                "types": _random_types(rng),
            }
            expect(self.user.post(self.route, json=body), 201)
        elif action == "patch":
            body: dict[str, Any] = {"zarr_url": rng.choice(urls)}
            if rng.random() < 0.7:
                body["attributes"] = _random_attributes(rng, route=True)
            if rng.random() < 0.7:
                body["types"] = _random_types(rng)
            expect(self.user.patch(self.route, json=body), 200)
        elif action == "delete":
            expect(self.user.delete(self.route, params={"zarr_url": rng.choice(urls)}), 204)
        else:
            self.task(urls)

    def task(self, urls: list[str]) -> None:
        rng = self.rng
        touched = rng.sample(urls, min(len(urls), rng.randint(0, 8)))
        removals = touched[: rng.randint(0, len(touched) // 2)]
        updates: list[dict[str, Any]] = []
        for url in touched[len(removals) :]:
            attributes = _random_attributes(rng, route=False)
            if rng.random() < 0.5 and attributes:
                attributes[rng.choice(list(attributes))] = None  # drops the attribute
            updates.append({"zarr_url": url, "attributes": attributes, "types": _random_types(rng)})
        for _ in range(rng.randint(0, 4)):
            update: dict[str, Any] = {
                "zarr_url": self.new_url(),
                "attributes": _random_attributes(rng, route=False),
            }
            if urls and rng.random() < 0.5:
                update["origin"] = rng.choice(urls)  # starts from that image's content
            updates.append(update)
        output_types = _random_types(rng) if rng.random() < 0.5 else None

        async def work(session: Any) -> None:
            await apply_image_changes(
                session, self.id, self.zarr_dir, updates, removals, output_types
            )
            await session.commit()

        run_in_session(self.url, work)

    def check_queries(self) -> None:
        images = _images(self.url, self.id)
        page = expect(self.user.post(self.route + "query/", json={}), 200)
        assert (page["attributes"], page["types"]) == _distinct(images)
        for _ in range(12):
            type_filters = _random_types(self.rng)
            attribute_filters = {
                key: self.rng.sample(VALUES, self.rng.randint(1, 3))
                for key in self.rng.sample(KEYS[:5], self.rng.randint(0, 2))
            }
            # Equal numbers of the other kind match too (1 and 1.0).
            if "fov" in attribute_filters:
                attribute_filters["fov"].append(1.0 if self.rng.random() < 0.5 else 2)
            body = {"type_filters": type_filters, "attribute_filters": attribute_filters}
            answer = expect(self.user.post(self.route + "query/?page_size=7", json=body), 200)
            matching = [
                image for image in images if _passes(image, type_filters, attribute_filters)
            ]
            assert answer["total_count"] == len(matching), body
            all_pages = expect(self.user.post(self.route + "query/", json=body), 200)
            got = [image["zarr_url"] for image in all_pages["items"]]
            assert got == [image[1] for image in matching], body
            assert [image["zarr_url"] for image in answer["items"]] == got[:7]


def test_random_writers_keep_the_tables_exact(api: ApiClient, db_url: str) -> None:
    mix = _Mix(api, db_url, seed=20261123)
    for number in range(60):
        mix.step()
        if number % 6 == 5:
            assert_tables_right(db_url, mix.id)
    assert len(mix.urls()) > 5, "the mix should leave images to check"
    mix.check_queries()

    # Recomputing from scratch gives the same tables as the upkeep did.
    before = _stored(db_url, mix.id)

    async def rebuild(session: Any) -> None:
        await image_service.rebuild_image_index(session, mix.id)
        await session.commit()

    run_in_session(db_url, rebuild)
    assert _stored(db_url, mix.id) == before

    # Removing every image, half through a task and half through the route, empties them.
    urls = mix.urls()
    half = len(urls) // 2

    async def remove(session: Any) -> None:
        await apply_image_changes(session, mix.id, mix.zarr_dir, [], urls[:half])
        await session.commit()

    run_in_session(db_url, remove)
    for url in urls[half:]:
        expect(mix.user.delete(mix.route, params={"zarr_url": url}), 204)
    assert _stored(db_url, mix.id) == (Counter(), set())


# ---------------------------------------------------------------- values jsonb rewrites


def test_floats_that_the_database_rewrites_keep_the_counts_right(
    api: ApiClient, db_url: str
) -> None:
    """1e20 comes back from jsonb as an integer and -0.0 as 0.0: counts must not drift."""
    mix = _Mix(api, db_url, seed=1)
    odd = [1e20, 1e23, -0.0, 0.0, 10**20, 1e-7, 123456.789]
    updates = [
        {"zarr_url": mix.new_url(), "attributes": {"x": value, "n": index}}
        for index, value in enumerate(odd)
    ]

    async def apply(session: Any, updates: list[Any], removals: list[str]) -> None:
        await apply_image_changes(session, mix.id, mix.zarr_dir, updates, removals)
        await session.commit()

    run_in_session(db_url, lambda session: apply(session, updates, []))
    assert_tables_right(db_url, mix.id)
    # Change the other attribute only, then the odd one, then remove: no count drifts.
    run_in_session(
        db_url,
        lambda session: apply(
            session, [{"zarr_url": u["zarr_url"], "attributes": {"n": -1}} for u in updates], []
        ),
    )
    assert_tables_right(db_url, mix.id)
    run_in_session(
        db_url,
        lambda session: apply(
            session, [{"zarr_url": u["zarr_url"], "attributes": {"x": 1}} for u in updates], []
        ),
    )
    assert_tables_right(db_url, mix.id)
    assert _stored(db_url, mix.id)[0]["a", "x", "1"] == len(odd)
    run_in_session(db_url, lambda session: apply(session, [], [u["zarr_url"] for u in updates]))
    assert _stored(db_url, mix.id) == (Counter(), set())


# ---------------------------------------------------------------- the migration fills the tables


def test_migration_fills_the_tables_from_existing_images(db_url: str) -> None:
    config = alembic_config(db_url)
    command.downgrade(config, "0001")
    try:
        documents = [
            ('{"well": "A01", "fov": 0, "ratio": 0.5}', '{"is_3D": true}'),
            ('{"well": "A01", "fov": 1.0, "ok": false}', '{"is_3D": false, "done": true}'),
            ('{"well": "\\u00e9t\\u00e9", "big": 1e20, "tiny": 1e-7, "zero": -0.0}', "{}"),
            ('{"quote": "a\\"b", "slash": "c\\\\d", "tab": "x\\ty"}', "{}"),
            ('{"big_int": 123456789012345678901234, "edge": 9223372036854775807}', "{}"),
            ('{"kept_out": null, "list": [1, 2], "n": 7}', '{"t": true}'),
        ]

        async def seed(session: Any) -> tuple[int, int]:
            connection = await session.connection()
            await connection.execute(
                text(
                    "INSERT INTO projectv2 (name, timestamp_created) "
                    "VALUES ('p', CURRENT_TIMESTAMP)"
                )
            )
            ids = []
            for name in ("one", "two"):
                await connection.execute(
                    text(
                        "INSERT INTO datasetv2 (project_id, name, zarr_dir, is_starred, "
                        "timestamp_created) SELECT max(id), :name, :dir, false, "
                        "CURRENT_TIMESTAMP FROM projectv2"
                    ),
                    {"name": name, "dir": f"/data/{name}"},
                )
                ids.append(
                    (await connection.execute(text("SELECT max(id) FROM datasetv2"))).scalar_one()
                )
            values = ":a, :t" if _is_sqlite(db_url) else "CAST(:a AS jsonb), CAST(:t AS jsonb)"
            insert = text(
                f"INSERT INTO imagev2 (dataset_id, zarr_url, attributes, types) "
                f"VALUES (:d, :u, {values})"
            )
            for dataset_id, name in zip(ids, ("one", "two"), strict=True):
                for number, (attributes, types) in enumerate(documents):
                    url = f"/data/{name}/{number}"
                    await connection.execute(
                        insert, {"d": dataset_id, "u": url, "a": attributes, "t": types}
                    )
            await session.commit()
            return ids[0], ids[1]

        first, second = run_in_session(db_url, seed)
    finally:
        upgrade(db_url)
    for dataset_id in (first, second):
        assert_tables_right(db_url, dataset_id)
    summary, _lookup = _stored(db_url, first)
    assert summary["a", "well", '"A01"'] == 2
    assert summary["a", "big", "100000000000000000000"] == 1
    assert ("a", "kept_out", "null") not in summary

    # What the migration wrote is what the writers count: removing everything empties it.
    async def remove_all(session: Any) -> None:
        urls = [f"/data/one/{number}" for number in range(len(documents))]
        await apply_image_changes(session, first, "/data/one", [], urls)
        await session.commit()

    run_in_session(db_url, remove_all)
    assert _stored(db_url, first) == (Counter(), set())
    assert_tables_right(db_url, second)


# ---------------------------------------------------------------- deletes and limits


def test_deleting_a_dataset_or_project_removes_its_rows(api: ApiClient, db_url: str) -> None:
    mix = _Mix(api, db_url, seed=7)
    for _ in range(6):
        mix.step()
    other = make_dataset(mix.user, mix.dataset["project_id"], "other")
    expect(
        mix.user.post(
            f"/api/v2/project/{mix.dataset['project_id']}/dataset/{other['id']}/images/",
            json={"zarr_url": f"{other['zarr_dir']}/x", "attributes": {"well": "A01"}},
        ),
        201,
    )
    assert _stored(db_url, mix.id)[0]
    expect(mix.user.delete(f"/api/v2/project/{mix.dataset['project_id']}/dataset/{mix.id}/"), 204)
    assert _stored(db_url, mix.id) == (Counter(), set())
    assert_tables_right(db_url, other["id"])
    assert _stored(db_url, other["id"])[0] == Counter({("a", "well", '"A01"'): 1})
    expect(mix.user.delete(f"/api/v2/project/{mix.dataset['project_id']}/"), 204)
    assert _stored(db_url, other["id"]) == (Counter(), set())


def test_attributes_too_large_for_the_summary_are_refused(api: ApiClient, db_url: str) -> None:
    mix = _Mix(api, db_url, seed=3)
    url = mix.new_url()
    long_text = "x" * 1100
    refused = expect(
        mix.user.post(mix.route, json={"zarr_url": url, "attributes": {"note": long_text}}), 422
    )
    assert "longer than 1024" in refused["detail"]
    expect(mix.user.post(mix.route, json={"zarr_url": url, "attributes": {"note": "ok"}}), 201)
    expect(mix.user.patch(mix.route, json={"zarr_url": url, "attributes": {"n": long_text}}), 422)
    # Escaped characters count as their JSON text: 100 emoji are 1,200 characters of it.
    expect(mix.user.patch(mix.route, json={"zarr_url": url, "attributes": {"n": "😀" * 100}}), 422)

    async def task(session: Any, update: dict[str, Any]) -> None:
        await apply_image_changes(session, mix.id, mix.zarr_dir, [update], [])

    for update in (
        {"zarr_url": url, "attributes": {"note": long_text}},
        {"zarr_url": url, "attributes": {"n" * 300: 1}},
        {"zarr_url": url, "types": {"t" * 300: True}},
    ):
        with pytest.raises(ImageChangeError, match="too large"):
            run_in_session(db_url, lambda session, update=update: task(session, update))
    assert_tables_right(db_url, mix.id)
