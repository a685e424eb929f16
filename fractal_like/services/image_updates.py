"""Merging a task's image-list output into a dataset, set-based, for any number of images.

Fractal's merge semantics, applied in the order the task listed its updates:

- an update of an EXISTING image merges its `attributes` (new keys win) and `types`;
  it may not name an `origin` other than the image itself;
- a NEW image must lie strictly below the dataset's `zarr_dir`; when its `origin`
  is an image of the dataset (also one created or edited earlier in the same list)
  it starts from that image's attributes and types, then its own override them;
- attributes whose value is None are dropped from the image;
- the task's `output_types` are applied last to every updated or created image;
- removals delete images, after the updates; removing an unknown image is an error;
- a zarr_url may appear only once across updates and removals.

Everything is checked before anything is written; the writes are a few statements
whatever the number of images (arrays on PostgreSQL, executemany on SQLite), and they
keep the dataset's summary (and, on SQLite, its attribute lookup) right, from the rows as
they were before and after (see `services.images.ImageIndexChanges`). The rows read are
locked first (FOR UPDATE on PostgreSQL, the write lock on SQLite), so that a concurrent
writer cannot change them in between. Committing is the caller's job; on an error,
nothing was written.

The rows are written with plain SQL: `Image` objects already loaded in the same
session are not refreshed (expire them or re-query them if they are used afterwards).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from .errors import InvalidError
from .images import (
    MAX_NAME_CHARS,
    MAX_VALUE_TEXT,
    ImageIndexChanges,
    ImageTooLargeError,
    check_size,
    lock_images,
    oversized,
)
from .paths import PathRefused, check_under, normalised_absolute

# Rows per statement: one array (PostgreSQL) or one JSON list (SQLite) per chunk.
CHUNK = 10_000

_UPDATE_KEYS = frozenset({"zarr_url", "origin", "attributes", "types"})

# Strings longer than this may be too large for the summary: they get the full check.
_SHORT_TEXT = MAX_VALUE_TEXT // 12


class ImageChangeError(InvalidError, ValueError):
    """A task's image-list output cannot be merged; the message says why, in plain words."""


@dataclass(frozen=True)
class ImageChangeSummary:
    created: int = 0
    # Existing images named in the updates (whether or not their content changed).
    updated: int = 0
    removed: int = 0


@dataclass
class _Row:
    id: int | None  # None for an image created by this change
    origin: str | None
    attributes: dict[str, Any]
    types: dict[str, bool]
    dirty: bool = False
    # The content as loaded; the merge replaces `attributes`/`types`, never mutates them.
    old_attributes: dict[str, Any] | None = None
    old_types: dict[str, bool] | None = None


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


def _url(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ImageChangeError(f"{what} must be a string, not {value!r}")
    if (
        value[:1] == "/"
        and value[-1] != "/"
        and "//" not in value
        and "/." not in value
        and "\x00" not in value
    ):
        return value  # already absolute and normal: the common case, checked cheaply
    try:
        return normalised_absolute(value, what)
    except PathRefused as error:
        raise ImageChangeError(str(error)) from None


def _attributes(value: Any, zarr_url: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ImageChangeError(f"attributes of {zarr_url!r} must be an object")
    for key, item in value.items():
        if not isinstance(key, str):
            raise ImageChangeError(f"attribute names of {zarr_url!r} must be strings")
        if item is not None and not isinstance(item, str | int | float | bool):
            raise ImageChangeError(
                f"attribute {key!r} of {zarr_url!r} must be a string, number, boolean or "
                f"null, not {type(item).__name__}"
            )
        if isinstance(item, float) and not math.isfinite(item):
            raise ImageChangeError(f"attribute {key!r} of {zarr_url!r} must be a finite number")
        if len(key) > MAX_NAME_CHARS or (type(item) is str and len(item) > _SHORT_TEXT):
            problem = oversized(key, item)
            if problem:
                raise ImageChangeError(f"attribute of {zarr_url!r} too large: {problem}")
    return value


def _types(value: Any, zarr_url: str | None, what: str = "types") -> dict[str, bool]:
    if value is None:
        return {}
    where = f" of {zarr_url!r}" if zarr_url else ""
    if not isinstance(value, dict):
        raise ImageChangeError(f"{what}{where} must be an object")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, bool):
            raise ImageChangeError(f"{what}{where} must map names to true or false")
        if len(key) > MAX_NAME_CHARS:
            raise ImageChangeError(f"{what}{where} too large: {oversized(key)}")
    return value


@dataclass
class _Update:
    zarr_url: str
    origin: str | None
    attributes: dict[str, Any]
    types: dict[str, bool]


def _parse_updates(updates: list[dict[str, Any]]) -> list[_Update]:
    parsed: list[_Update] = []
    seen: set[str] = set()
    for number, update in enumerate(updates):
        if not isinstance(update, dict):
            raise ImageChangeError(f"image-list update #{number} is not an object")
        unknown = set(update) - _UPDATE_KEYS
        if unknown:
            raise ImageChangeError(
                f"image-list update #{number} has unknown keys: {', '.join(sorted(unknown))}"
            )
        if "zarr_url" not in update:
            raise ImageChangeError(f"image-list update #{number} has no zarr_url")
        zarr_url = _url(update["zarr_url"], "zarr_url")
        if zarr_url in seen:
            raise ImageChangeError(f"zarr_url {zarr_url!r} appears more than once in the updates")
        seen.add(zarr_url)
        origin = update.get("origin")
        parsed.append(
            _Update(
                zarr_url=zarr_url,
                origin=None if origin is None else _url(origin, "origin"),
                attributes=_attributes(update.get("attributes"), zarr_url),
                types=_types(update.get("types"), zarr_url),
            )
        )
    return parsed


def _parse_removals(removals: list[str], updated: set[str]) -> list[str]:
    parsed: list[str] = []
    seen: set[str] = set()
    for value in removals:
        zarr_url = _url(value, "zarr_url to remove")
        if zarr_url in seen:
            raise ImageChangeError(f"zarr_url {zarr_url!r} appears more than once in the removals")
        if zarr_url in updated:
            raise ImageChangeError(f"zarr_url {zarr_url!r} is both updated and removed")
        seen.add(zarr_url)
        parsed.append(zarr_url)
    return parsed


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# Statements per dialect, run with exec_driver_sql: one JSON text parameter carries a
# whole chunk (a list of urls, or of [id, attributes, types] rows), so a chunk is one
# round trip and one parse on the server, whatever its size.
_PG = {
    # One JSON document for all the rows: a single json.loads instead of two per row.
    # The rows are locked: their content is what the summary's changes are counted from.
    "load": "SELECT CAST(json_agg(json_build_array(i.id, i.zarr_url, i.origin, i.attributes, "
    "i.types)) AS text) FROM (SELECT * FROM imagev2 WHERE dataset_id = %s AND zarr_url = "
    "ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(%s AS jsonb)))) FOR UPDATE) i",
    "exists": "SELECT i.zarr_url FROM imagev2 i WHERE i.dataset_id = %s AND i.zarr_url = "
    "ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(%s AS jsonb))))",
    "delete": "WITH d AS (DELETE FROM imagev2 WHERE dataset_id = %s AND zarr_url = "
    "ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(%s AS jsonb)))) "
    "RETURNING id, attributes, types) "
    "SELECT CAST(json_agg(json_build_array(id, attributes, types)) AS text) FROM d",
    "update": "UPDATE imagev2 AS i SET attributes = v.value -> 1, types = v.value -> 2 "
    "FROM jsonb_array_elements(CAST(%s AS jsonb)) AS v "
    "WHERE i.id = CAST(v.value ->> 0 AS integer)",
    "insert": "INSERT INTO imagev2 (dataset_id, zarr_url, origin, attributes, types) "
    "SELECT %s, v.value ->> 0, v.value ->> 1, v.value -> 2, v.value -> 3 "
    "FROM jsonb_array_elements(CAST(%s AS jsonb)) WITH ORDINALITY AS v(value, n) ORDER BY v.n",
}
_SQLITE = {
    "load": "SELECT json_group_array(json_array(id, zarr_url, origin, json(attributes), "
    "json(types))) FROM imagev2 "
    "WHERE dataset_id = ? AND zarr_url IN (SELECT value FROM json_each(?))",
    "exists": "SELECT zarr_url FROM imagev2 "
    "WHERE dataset_id = ? AND zarr_url IN (SELECT value FROM json_each(?))",
    "delete": "DELETE FROM imagev2 "
    "WHERE dataset_id = ? AND zarr_url IN (SELECT value FROM json_each(?)) "
    "RETURNING id, attributes, types",
    # The ids of the images just inserted (executemany returns none), for the lookup.
    "ids": "SELECT zarr_url, id FROM imagev2 "
    "WHERE dataset_id = ? AND zarr_url IN (SELECT value FROM json_each(?))",
    # SQLite runs these once per row (executemany): cheap, as it is in-process.
    "update": "UPDATE imagev2 SET attributes = ?, types = ? WHERE id = ?",
    "insert": "INSERT INTO imagev2 (dataset_id, zarr_url, origin, attributes, types) "
    "VALUES (?, ?, ?, ?, ?)",
}


class _Writer:
    """The few statements of a change, on the session's own connection and transaction."""

    def __init__(self, connection: AsyncConnection, dataset_id: int) -> None:
        self.connection = connection
        self.dataset_id = dataset_id
        self.postgres = connection.dialect.name == "postgresql"
        self.sql = _PG if self.postgres else _SQLITE

    @staticmethod
    def _json_pair(row: _Row) -> tuple[str, str]:
        return _dumps(row.attributes), _dumps(row.types)

    async def _run(self, name: str, params: Any) -> Any:
        return await self.connection.exec_driver_sql(self.sql[name], params)

    async def load(self, urls: list[str]) -> dict[str, _Row]:
        rows: dict[str, _Row] = {}
        for chunk in _chunks(urls):
            document = (await self._run("load", (self.dataset_id, _dumps(chunk)))).scalar()
            for row_id, zarr_url, origin, attributes, types in json.loads(document or "[]"):
                rows[zarr_url] = _Row(row_id, origin, attributes, types, False, attributes, types)
        return rows

    async def existing(self, urls: list[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(urls):
            result = await self._run("exists", (self.dataset_id, _dumps(chunk)))
            found.update(row[0] for row in result)
        return found

    async def update(self, changed: list[_Row]) -> None:
        for start in range(0, len(changed), CHUNK):
            chunk = changed[start : start + CHUNK]
            if self.postgres:
                payload = [[row.id, row.attributes, row.types] for row in chunk]
                await self._run("update", (_dumps(payload),))
            else:
                await self._run(
                    "update",
                    [(*self._json_pair(row), row.id) for row in chunk],
                )

    async def insert(self, created: list[tuple[str, _Row]]) -> None:
        """Insert the new images; on SQLite, set each row's id (the lookup needs it)."""
        for start in range(0, len(created), CHUNK):
            chunk = created[start : start + CHUNK]
            if self.postgres:
                payload = [[url, row.origin, row.attributes, row.types] for url, row in chunk]
                await self._run("insert", (self.dataset_id, _dumps(payload)))
            else:
                await self._run(
                    "insert",
                    [
                        (
                            self.dataset_id,
                            url,
                            row.origin,
                            _dumps(row.attributes),
                            _dumps(row.types),
                        )
                        for url, row in chunk
                    ],
                )
                by_url = dict(chunk)
                ids = await self._run("ids", (self.dataset_id, _dumps(list(by_url))))
                for zarr_url, row_id in ids:
                    by_url[zarr_url].id = row_id

    async def delete(self, urls: list[str], changes: ImageIndexChanges) -> int:
        removed = 0
        for chunk in _chunks(urls):
            result = await self._run("delete", (self.dataset_id, _dumps(chunk)))
            if self.postgres:
                rows = json.loads(result.scalar() or "[]")
            else:
                rows = [(i, json.loads(a), json.loads(t)) for i, a, t in result]
            for row_id, attributes, types in rows:
                changes.removed(row_id, attributes, types)
            removed += len(rows)
        return removed


def _same(new: dict[str, Any], old: dict[str, Any]) -> bool:
    # Python finds 1 == 1.0 == True; JSON (and Fractal's filters) do not.
    return new == old and all(type(value) is type(old[key]) for key, value in new.items())


def _merge(
    parsed: list[_Update],
    rows: dict[str, _Row],
    zarr_dir: str,
    output_types: dict[str, bool],
) -> tuple[list[tuple[str, _Row]], int]:
    """Apply the updates to `rows` in order; return the created images and the updated count."""
    created: list[tuple[str, _Row]] = []
    updated = 0
    for update in parsed:
        row = rows.get(update.zarr_url)
        if row is not None and row.id is not None:
            if update.origin is not None and update.origin != update.zarr_url:
                raise ImageChangeError(
                    f"image {update.zarr_url!r} already exists: an update cannot give it "
                    f"another origin ({update.origin!r})"
                )
            attributes = {**row.attributes, **update.attributes}
            types = {**row.types, **update.types, **output_types}
            attributes = {key: value for key, value in attributes.items() if value is not None}
            if not (_same(attributes, row.attributes) and _same(types, row.types)):
                row.attributes, row.types, row.dirty = attributes, types, True
            updated += 1
            continue
        try:
            check_under(update.zarr_url, zarr_dir)
        except PathRefused as error:
            raise ImageChangeError(f"cannot create image: {error}") from None
        source = rows.get(update.origin) if update.origin is not None else None
        attributes = {**(source.attributes if source else {}), **update.attributes}
        types = {**(source.types if source else {}), **update.types, **output_types}
        attributes = {key: value for key, value in attributes.items() if value is not None}
        new_row = _Row(None, update.origin, attributes, types, dirty=True)
        rows[update.zarr_url] = new_row
        created.append((update.zarr_url, new_row))
    return created, updated


async def apply_image_changes(
    session: AsyncSession,
    dataset_id: int,
    zarr_dir: str,
    updates: list[dict[str, Any]],
    removals: list[str],
    output_types: dict[str, bool] | None = None,
) -> ImageChangeSummary:
    """Merge a task's `image_list_updates` and `image_list_removals` into a dataset.

    Raises ImageChangeError (a ValueError) with a plain message, before writing
    anything, when the output breaks a rule (see the module docstring).
    """
    with _no_cyclic_gc():
        return await _apply(session, dataset_id, zarr_dir, updates, removals, output_types)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cycle collector while a batch builds its many (acyclic) objects.

    Tens of thousands of new dicts and tuples trigger full collections that walk every
    object of the process, for nothing: about a tenth of a 10,000-image update. The
    collector is switched back on afterwards (unless it was off before).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _apply(
    session: AsyncSession,
    dataset_id: int,
    zarr_dir: str,
    updates: list[dict[str, Any]],
    removals: list[str],
    output_types: dict[str, bool] | None,
) -> ImageChangeSummary:
    zarr_dir = _url(zarr_dir, "zarr_dir")
    extra_types = _types(output_types, None, "output_types")
    parsed = _parse_updates(updates)
    to_remove = _parse_removals(removals, {update.zarr_url for update in parsed})
    await lock_images(session)
    writer = _Writer(await session.connection(), dataset_id)

    wanted = {update.zarr_url for update in parsed}
    wanted.update(update.origin for update in parsed if update.origin is not None)
    rows = await writer.load(sorted(wanted))
    if to_remove:
        found = await writer.existing(to_remove)
        missing = [url for url in to_remove if url not in found]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ImageChangeError(
                f"cannot remove image {missing[0]!r}{more}: it is not in dataset {dataset_id}"
            )

    created, updated = _merge(parsed, rows, zarr_dir, extra_types)
    # In id order: the table's pages are then visited once each, in order.
    changed = sorted(
        (row for row in rows.values() if row.dirty and row.id is not None),
        key=lambda row: row.id or 0,
    )
    changes = ImageIndexChanges(writer.connection)
    await writer.update(changed)
    for row in changed:
        assert row.id is not None and row.old_attributes is not None and row.old_types is not None
        changes.changed(row.id, row.old_attributes, row.old_types, row.attributes, row.types)
    await writer.insert(created)
    for _zarr_url, row in created:
        changes.added(row.id, row.attributes, row.types)
    removed = await writer.delete(to_remove, changes) if to_remove else 0
    await changes.write(dataset_id)
    return ImageChangeSummary(created=len(created), updated=updated, removed=removed)


@dataclass(frozen=True)
class NewImage:
    zarr_url: str
    origin: str | None
    attributes: dict[str, Any]
    types: dict[str, bool]


def check_new_images(images: Sequence[NewImage], zarr_dir: str) -> list[NewImage]:
    """The images with their zarr_url normalised, each checked as adding one image is:
    strictly below `zarr_dir`, small enough to store, and named once. Raises
    ImageChangeError. Plain Python: large lists may be checked off the event loop."""
    checked: list[NewImage] = []
    seen: set[str] = set()
    for image in images:
        try:
            zarr_url = check_under(image.zarr_url, zarr_dir)
            check_size(image.attributes, image.types)
        except (PathRefused, ImageTooLargeError) as error:
            raise ImageChangeError(str(error)) from None
        if zarr_url in seen:
            raise ImageChangeError(f"zarr_url {zarr_url!r} appears more than once")
        seen.add(zarr_url)
        checked.append(NewImage(zarr_url, image.origin, image.attributes, image.types))
    return checked


async def insert_new_images(
    session: AsyncSession, dataset_id: int, images: Sequence[NewImage]
) -> None:
    """Add images, as given (no merge), to a dataset that has none of them (not committed):
    a few statements whatever their number, the summary kept right. Check them first with
    `check_new_images`."""
    with _no_cyclic_gc():
        await lock_images(session)
        writer = _Writer(await session.connection(), dataset_id)
        created = [
            (image.zarr_url, _Row(None, image.origin, image.attributes, image.types, dirty=True))
            for image in images
        ]
        await writer.insert(created)
        changes = ImageIndexChanges(writer.connection)
        for _zarr_url, row in created:
            changes.added(row.id, row.attributes, row.types)
        await changes.write(dataset_id)
