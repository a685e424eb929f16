"""Merging a task's image-list output into a dataset, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from fractal_like.models import Dataset, Image, Project
from fractal_like.services import image_updates
from fractal_like.services import images as image_service
from fractal_like.services.image_updates import (
    ImageChangeError,
    ImageChangeSummary,
    apply_image_changes,
)
from fractal_like.services.images import count_images, query_images

from ..support.helpers import run_in_session

ZARR_DIR = "/data/project/ds"
OTHER_ZARR_DIR = "/data/project/other"


@dataclass
class Env:
    url: str
    dataset_id: int
    other_dataset_id: int


@pytest.fixture
def env(db_url: str) -> Env:
    async def setup(session: Any) -> Env:
        project = Project(name="images")
        session.add(project)
        await session.flush()
        dataset = Dataset(project_id=project.id, name="ds", zarr_dir=ZARR_DIR)
        other = Dataset(project_id=project.id, name="other", zarr_dir=OTHER_ZARR_DIR)
        session.add_all([dataset, other])
        await session.commit()
        return Env(db_url, dataset.id, other.id)

    return run_in_session(db_url, setup)


def apply(
    env: Env,
    updates: list[dict[str, Any]],
    removals: list[str] | None = None,
    output_types: dict[str, bool] | None = None,
    *,
    dataset_id: int | None = None,
    zarr_dir: str = ZARR_DIR,
) -> ImageChangeSummary:
    async def work(session: Any) -> ImageChangeSummary:
        result = await apply_image_changes(
            session,
            dataset_id or env.dataset_id,
            zarr_dir,
            updates,
            removals or [],
            output_types,
        )
        await session.commit()
        return result

    return run_in_session(env.url, work)


def images(env: Env, dataset_id: int | None = None) -> dict[str, dict[str, Any]]:
    async def work(session: Any) -> list[Image]:
        return await query_images(session, dataset_id or env.dataset_id)

    return {
        row.zarr_url: {"origin": row.origin, "attributes": row.attributes, "types": row.types}
        for row in run_in_session(env.url, work)
    }


def url(name: str) -> str:
    return f"{ZARR_DIR}/{name}"


def seed(env: Env) -> None:
    summary = apply(
        env,
        [
            {"zarr_url": url("a"), "attributes": {"well": "A01", "fov": 1}, "types": {"3D": True}},
            {"zarr_url": url("b"), "attributes": {"well": "B02", "fov": 2}, "types": {"3D": False}},
        ],
    )
    assert summary == ImageChangeSummary(created=2, updated=0, removed=0)


def test_new_images_are_created_with_their_attributes_and_types(env: Env) -> None:
    seed(env)
    assert images(env) == {
        url("a"): {"origin": None, "attributes": {"well": "A01", "fov": 1}, "types": {"3D": True}},
        url("b"): {
            "origin": None,
            "attributes": {"well": "B02", "fov": 2},
            "types": {"3D": False},
        },
    }


def test_existing_image_merges_attributes_and_types(env: Env) -> None:
    seed(env)
    summary = apply(
        env,
        [
            {
                "zarr_url": url("a"),
                "attributes": {"fov": 7, "plate": "p.zarr"},
                "types": {"mip": True},
            }
        ],
    )
    assert summary == ImageChangeSummary(created=0, updated=1, removed=0)
    image = images(env)[url("a")]
    assert image["attributes"] == {"well": "A01", "fov": 7, "plate": "p.zarr"}
    assert image["types"] == {"3D": True, "mip": True}
    # The other image is untouched.
    assert images(env)[url("b")]["attributes"] == {"well": "B02", "fov": 2}


def test_type_values_of_an_existing_image_can_be_flipped(env: Env) -> None:
    seed(env)
    apply(env, [{"zarr_url": url("a"), "types": {"3D": False}}])
    assert images(env)[url("a")]["types"] == {"3D": False}


def test_none_attributes_are_dropped(env: Env) -> None:
    seed(env)
    apply(env, [{"zarr_url": url("a"), "attributes": {"fov": None, "z": 3}}])
    assert images(env)[url("a")]["attributes"] == {"well": "A01", "z": 3}
    apply(env, [{"zarr_url": url("new"), "attributes": {"x": None, "y": "1"}}])
    assert images(env)[url("new")]["attributes"] == {"y": "1"}


def test_a_value_changing_only_its_json_type_is_written(env: Env) -> None:
    seed(env)
    apply(env, [{"zarr_url": url("a"), "attributes": {"fov": True}}])
    assert images(env)[url("a")]["attributes"]["fov"] is True
    apply(env, [{"zarr_url": url("a"), "attributes": {"fov": 1}}])
    fov = images(env)[url("a")]["attributes"]["fov"]
    assert fov == 1 and type(fov) is int
    apply(env, [{"zarr_url": url("a"), "types": {"3D": True}, "attributes": {"fov": 1}}])
    assert type(images(env)[url("a")]["attributes"]["fov"]) is int


def test_update_without_changes_still_counts_and_keeps_the_row(env: Env) -> None:
    seed(env)
    before = images(env)
    summary = apply(env, [{"zarr_url": url("a")}, {"zarr_url": url("b"), "origin": url("b")}])
    assert summary == ImageChangeSummary(created=0, updated=2, removed=0)
    assert images(env) == before


def test_existing_image_cannot_get_another_origin(env: Env) -> None:
    seed(env)
    with pytest.raises(ImageChangeError, match="cannot give it another origin"):
        apply(env, [{"zarr_url": url("a"), "origin": url("b")}])


def test_new_image_must_be_strictly_under_zarr_dir(env: Env) -> None:
    for bad in ("/elsewhere/x", ZARR_DIR, ZARR_DIR + "x/y", ZARR_DIR + "/../other/x"):
        with pytest.raises(ImageChangeError) as info:
            apply(env, [{"zarr_url": bad}])
        assert isinstance(info.value, ValueError)
        assert "Traceback" not in str(info.value)
    with pytest.raises(ImageChangeError, match="not an absolute path"):
        apply(env, [{"zarr_url": "relative/x"}])
    assert images(env) == {}


def test_trailing_slashes_are_normalised(env: Env) -> None:
    seed(env)
    summary = apply(env, [{"zarr_url": url("a") + "/", "attributes": {"fov": 9}}])
    assert summary.updated == 1
    assert images(env)[url("a")]["attributes"]["fov"] == 9
    apply(env, [{"zarr_url": url("c") + "//"}], zarr_dir=ZARR_DIR + "/")
    assert url("c") in images(env)


def test_new_image_inherits_from_its_origin_then_overrides(env: Env) -> None:
    seed(env)
    summary = apply(
        env,
        [
            {
                "zarr_url": url("a_mip"),
                "origin": url("a"),
                "attributes": {"fov": 10, "well": None},
                "types": {"mip": True},
            }
        ],
    )
    assert summary == ImageChangeSummary(created=1, updated=0, removed=0)
    assert images(env)[url("a_mip")] == {
        "origin": url("a"),
        "attributes": {"fov": 10},
        "types": {"3D": True, "mip": True},
    }
    # The origin itself is unchanged.
    assert images(env)[url("a")]["attributes"] == {"well": "A01", "fov": 1}


def test_unknown_origin_gives_nothing_to_inherit(env: Env) -> None:
    seed(env)
    apply(env, [{"zarr_url": url("n"), "origin": "/somewhere/else", "attributes": {"k": 1}}])
    assert images(env)[url("n")] == {
        "origin": "/somewhere/else",
        "attributes": {"k": 1},
        "types": {},
    }


def test_origin_in_another_dataset_is_not_inherited(env: Env) -> None:
    apply(
        env,
        [{"zarr_url": f"{OTHER_ZARR_DIR}/o", "attributes": {"secret": "x"}}],
        dataset_id=env.other_dataset_id,
        zarr_dir=OTHER_ZARR_DIR,
    )
    apply(env, [{"zarr_url": url("n"), "origin": f"{OTHER_ZARR_DIR}/o"}])
    assert images(env)[url("n")]["attributes"] == {}


def test_origin_may_be_an_image_created_or_edited_earlier_in_the_list(env: Env) -> None:
    seed(env)
    apply(
        env,
        [
            {"zarr_url": url("a"), "attributes": {"step": 1}},
            {"zarr_url": url("first"), "origin": url("a"), "attributes": {"gen": 1}},
            {"zarr_url": url("second"), "origin": url("first"), "types": {"labels": True}},
        ],
    )
    got = images(env)
    assert got[url("first")]["attributes"] == {"well": "A01", "fov": 1, "step": 1, "gen": 1}
    assert got[url("second")] == {
        "origin": url("first"),
        "attributes": {"well": "A01", "fov": 1, "step": 1, "gen": 1},
        "types": {"3D": True, "labels": True},
    }


def test_output_types_are_applied_last_to_updated_and_created_images(env: Env) -> None:
    seed(env)
    summary = apply(
        env,
        [
            {"zarr_url": url("a"), "types": {"illum": False, "3D": True}},
            {"zarr_url": url("c"), "origin": url("b"), "types": {"illum": False}},
        ],
        output_types={"illum": True, "3D": False},
    )
    assert summary == ImageChangeSummary(created=1, updated=1, removed=0)
    got = images(env)
    assert got[url("a")]["types"] == {"3D": False, "illum": True}
    assert got[url("c")]["types"] == {"3D": False, "illum": True}
    # Images the task did not list keep their types.
    assert got[url("b")]["types"] == {"3D": False}


def test_removals_delete_rows_after_updates(env: Env) -> None:
    seed(env)
    summary = apply(
        env,
        [{"zarr_url": url("copy"), "origin": url("b")}],
        removals=[url("b"), url("a") + "/"],
    )
    assert summary == ImageChangeSummary(created=1, updated=0, removed=2)
    assert images(env) == {
        url("copy"): {
            "origin": url("b"),
            "attributes": {"well": "B02", "fov": 2},
            "types": {"3D": False},
        }
    }


def test_removing_an_unknown_image_is_an_error_and_writes_nothing(env: Env) -> None:
    seed(env)
    before = images(env)
    with pytest.raises(ImageChangeError, match=r"cannot remove image .*/nope.*not in dataset"):
        apply(env, [{"zarr_url": url("new")}], removals=[url("a"), url("nope")])
    assert images(env) == before


def test_removing_an_image_of_another_dataset_is_an_error(env: Env) -> None:
    apply(
        env,
        [{"zarr_url": f"{OTHER_ZARR_DIR}/o"}],
        dataset_id=env.other_dataset_id,
        zarr_dir=OTHER_ZARR_DIR,
    )
    with pytest.raises(ImageChangeError, match="cannot remove"):
        apply(env, [], removals=[f"{OTHER_ZARR_DIR}/o"])
    assert list(images(env, env.other_dataset_id)) == [f"{OTHER_ZARR_DIR}/o"]


def test_duplicate_urls_are_errors(env: Env) -> None:
    seed(env)
    with pytest.raises(ImageChangeError, match="more than once in the updates"):
        apply(env, [{"zarr_url": url("x")}, {"zarr_url": url("x") + "/"}])
    with pytest.raises(ImageChangeError, match="more than once in the removals"):
        apply(env, [], removals=[url("a"), url("a")])
    with pytest.raises(ImageChangeError, match="both updated and removed"):
        apply(env, [{"zarr_url": url("a")}], removals=[url("a")])
    assert set(images(env)) == {url("a"), url("b")}


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"zarr_url": url("x"), "attributes": {"k": [1, 2]}}, "must be a string, number"),
        ({"zarr_url": url("x"), "attributes": ["k"]}, r"attributes .* must be an object"),
        ({"zarr_url": url("x"), "types": {"k": 1}}, "must map names to true or false"),
        ({"zarr_url": url("x"), "attributes": {"k": float("nan")}}, "must be a finite number"),
        ({"zarr_url": url("x"), "colour": "red"}, "unknown keys: colour"),
        ({"origin": url("a")}, "has no zarr_url"),
        ({"zarr_url": 3}, "zarr_url must be a string"),
    ],
)
def test_malformed_updates_are_refused_with_a_plain_message(
    env: Env, update: dict[str, Any], message: str
) -> None:
    with pytest.raises(ImageChangeError, match=message):
        apply(env, [update])


def test_malformed_output_types_are_refused(env: Env) -> None:
    with pytest.raises(ImageChangeError, match="output_types must map"):
        apply(env, [{"zarr_url": url("x")}], output_types={"a": "yes"})  # type: ignore[dict-item]


def test_an_error_late_in_the_list_writes_nothing(env: Env) -> None:
    seed(env)
    before = images(env)
    with pytest.raises(ImageChangeError, match="not inside"):
        apply(
            env,
            [
                {"zarr_url": url("a"), "attributes": {"fov": 99}},
                {"zarr_url": url("ok")},
                {"zarr_url": "/outside/x"},
            ],
        )
    assert images(env) == before


def test_other_datasets_with_the_same_url_are_untouched(env: Env) -> None:
    shared = f"{ZARR_DIR}/same"
    apply(env, [{"zarr_url": shared, "attributes": {"mine": 1}}])
    apply(
        env,
        [{"zarr_url": shared, "attributes": {"theirs": 1}}],
        dataset_id=env.other_dataset_id,
        zarr_dir=ZARR_DIR,
    )
    apply(env, [{"zarr_url": shared, "attributes": {"mine": 2}}])
    assert images(env)[shared]["attributes"] == {"mine": 2}
    assert images(env, env.other_dataset_id)[shared]["attributes"] == {"theirs": 1}


def test_written_rows_answer_the_sql_filters(env: Env) -> None:
    seed(env)
    apply(
        env,
        [
            {"zarr_url": url("a"), "attributes": {"ok": True, "ratio": 0.5}},
            {"zarr_url": url("c"), "origin": url("a"), "types": {"3D": False}},
        ],
        output_types={"done": True},
    )

    async def work(session: Any) -> tuple[int, ...]:
        d = env.dataset_id
        return (
            await count_images(session, d, type_filters={"done": True}),
            await count_images(session, d, type_filters={"3D": True, "done": True}),
            await count_images(session, d, attribute_filters={"well": ["A01"]}),
            await count_images(session, d, attribute_filters={"ok": [True]}),
            await count_images(session, d, attribute_filters={"ratio": [0.5]}),
            await count_images(session, d, attribute_filters={"fov": [1]}),
        )

    assert run_in_session(env.url, work) == (2, 1, 2, 2, 2, 2)

    async def summary(session: Any) -> Any:
        return await image_service.summary(session, env.dataset_id)

    attributes, types = run_in_session(env.url, summary)
    assert attributes["well"] == ["A01", "B02"]
    assert types == ["3D", "done"]


def test_small_chunks_give_the_same_result(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_updates, "CHUNK", 7)
    apply(env, [{"zarr_url": url(f"i{n}"), "attributes": {"n": n}} for n in range(50)])
    summary = apply(
        env,
        [{"zarr_url": url(f"i{n}"), "attributes": {"m": n}} for n in range(0, 50, 2)]
        + [{"zarr_url": url(f"j{n}"), "origin": url(f"i{n}")} for n in range(1, 50, 2)],
        removals=[url(f"i{n}") for n in range(1, 30, 2)],
    )
    assert summary == ImageChangeSummary(created=25, updated=25, removed=15)
    got = images(env)
    assert len(got) == 60
    assert got[url("i4")]["attributes"] == {"n": 4, "m": 4}
    assert got[url("j3")] == {"origin": url("i3"), "attributes": {"n": 3}, "types": {}}
    assert url("i3") not in got and url("i31") in got


def test_ten_thousand_updates_in_one_call(env: Env) -> None:
    count = 10_000
    created = apply(
        env,
        [
            {
                "zarr_url": url(f"plate.zarr/{n // 100}/{n % 100}/0"),
                "attributes": {"plate": "plate.zarr", "well": f"W{n // 100:03d}", "fov": n % 100},
                "types": {"is_3D": True},
            }
            for n in range(count)
        ],
    )
    assert created == ImageChangeSummary(created=count, updated=0, removed=0)

    updates: list[dict[str, Any]] = [
        {
            "zarr_url": url(f"plate.zarr/{n // 100}/{n % 100}/0"),
            "attributes": {"fov": None, "corrected": n},
        }
        for n in range(count)
    ]
    updates += [
        {"zarr_url": url(f"plate_mip.zarr/{n}"), "origin": url(f"plate.zarr/{n // 100}/0/0")}
        for n in range(0, count, 10)
    ]
    removals = [url(f"plate.zarr/99/{n}/0") for n in range(100)]
    updates = [u for u in updates if u["zarr_url"] not in set(removals)]
    summary = apply(env, updates, removals, output_types={"illumination_corrected": True})
    assert summary == ImageChangeSummary(created=1_000, updated=count - 100, removed=100)

    got = images(env)
    assert len(got) == count - 100 + 1_000
    for n in (0, 1, 4_321, 9_899):
        image = got[url(f"plate.zarr/{n // 100}/{n % 100}/0")]
        assert image == {
            "origin": None,
            "attributes": {"plate": "plate.zarr", "well": f"W{n // 100:03d}", "corrected": n},
            "types": {"is_3D": True, "illumination_corrected": True},
        }
    mip = got[url("plate_mip.zarr/4320")]
    assert mip == {
        "origin": url("plate.zarr/43/0/0"),
        "attributes": {"plate": "plate.zarr", "well": "W043", "corrected": 4300},
        "types": {"is_3D": True, "illumination_corrected": True},
    }
    assert url("plate.zarr/99/5/0") not in got
