"""Image queries, and the derived tables that keep them fast, on both databases.

Filters follow Fractal's semantics: an image passes `type_filters` when
`types.get(key, False) == value` for every key, and `attribute_filters` when
`attributes.get(key) in values` for every key (a number matches an equal number,
1 == 1.0, but never a boolean or a string). On PostgreSQL they use JSONB containment
(attributes through a GIN index); on SQLite, type filters use json_type and attribute
filters the lookup table `imagev2_attribute`.

Two tables are derived from the images (see `models.dataset`): `imagev2_summary` (how
many images have each attribute value and type key, per dataset: the `summary` of a
query) and, on SQLite only, `imagev2_attribute`. Every writer of `imagev2` records
what it changed with an `ImageIndexChanges`, in the same transaction:

    changes = ImageIndexChanges(connection)
    changes.changed(image_id, old_attributes, old_types, new_attributes, new_types)
    await changes.write(dataset_id)

and takes `lock_images` first, so that the rows it reads are the ones it replaces.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, false, literal, or_, text, true, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, delete, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Image
from ..models.dataset import ImageAttribute, ImageSummary
from .errors import InvalidError

# ---------------------------------------------------------------- canonical values


def value_text(value: Any) -> str:
    """The canonical JSON text of an attribute value, whichever database it was read from.

    PostgreSQL's jsonb stores numbers as decimals: a float written with an exponent
    (1e+20) comes back as an integer and -0.0 as 0.0, so the text is the same here.
    """
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is str:
        return json.dumps(value)
    if kind is int:
        return str(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"attribute value {value!r} is not a finite number")
        shown = repr(value)
        if "e+" in shown:
            return str(int(Decimal(shown)))
        return "0.0" if value == 0 else shown
    raise TypeError(f"attribute value {value!r} is not a string, number or boolean")


def _indexed(value: Any) -> bool:
    """Whether the summary and the lookup count a value: what an attribute filter can ask.

    Writers store only these; a null, list or object in an older row is left out.
    """
    kind = type(value)
    return kind is str or kind is int or kind is bool or (kind is float and math.isfinite(value))


# Bounds of what the summary (a primary key over name and value) can hold on every
# database: PostgreSQL refuses a B-tree entry over 2,704 bytes.
MAX_NAME_CHARS = 255
MAX_VALUE_TEXT = 1024


class ImageTooLargeError(InvalidError, ValueError):
    """An image's content cannot be stored; the message says why, in plain words."""


def oversized(key: str, value: Any = None) -> str | None:
    """Why an attribute (or a type, without value) is too large to store; None if it fits."""
    if len(key) > MAX_NAME_CHARS:
        return f"the name {key[:40]!r}... is longer than {MAX_NAME_CHARS} characters"
    # One character is at most 12 characters of JSON text (an escaped surrogate pair).
    long = type(value) is str and len(value) > MAX_VALUE_TEXT // 12
    if long and len(value_text(value)) > MAX_VALUE_TEXT:
        return f"the value of {key!r} is longer than {MAX_VALUE_TEXT} characters as JSON"
    return None


def check_size(attributes: dict[str, Any], types: dict[str, bool]) -> None:
    """Raise ImageTooLargeError when an attribute or type is too large to store."""
    for key, value in attributes.items():
        problem = oversized(key, value)
        if problem:
            raise ImageTooLargeError(f"attribute too large: {problem}")
    for key in types:
        problem = oversized(key)
        if problem:
            raise ImageTooLargeError(f"type too large: {problem}")


def filter_value_texts(value: Any) -> list[str]:
    """The canonical texts an attribute filter value matches: 1 matches 1 and 1.0."""
    if not _indexed(value):
        return []  # NaN, infinity: no stored value equals them
    texts = [value_text(value)]
    if type(value) is int:
        try:
            as_float = float(value)
        except OverflowError:
            as_float = math.inf
        if as_float == value:
            texts.append(value_text(as_float))
    elif type(value) is float and value.is_integer():
        texts.append(value_text(int(value)))
    return sorted(set(texts))


# ---------------------------------------------------------------- keeping the tables right


def _dialect_of(connection: AsyncConnection) -> str:
    return connection.dialect.name


async def lock_images(session: AsyncSession) -> None:
    """Start the write transaction before reading the images about to be replaced.

    SQLite (pysqlite) opens a transaction only at the first write, so rows read before
    it could be changed by another writer in between; a write that touches nothing takes
    the database's write lock now. On PostgreSQL the readers lock their rows with
    FOR UPDATE instead.
    """
    connection = await session.connection()
    if _dialect_of(connection) == "sqlite":
        await connection.exec_driver_sql("UPDATE imagev2_summary SET n = n WHERE 0")


_MISSING = object()

_PG_UPSERT = (
    "INSERT INTO imagev2_summary (dataset_id, kind, key, value, n) "
    "SELECT %s, v.value ->> 0, v.value ->> 1, v.value ->> 2, CAST(v.value ->> 3 AS integer) "
    "FROM jsonb_array_elements(CAST(%s AS jsonb)) WITH ORDINALITY AS v(value, o) ORDER BY v.o "
    "ON CONFLICT (dataset_id, kind, key, value) DO UPDATE SET n = imagev2_summary.n + excluded.n"
)
_PG_DROP_EMPTY = (
    "DELETE FROM imagev2_summary s USING jsonb_array_elements(CAST(%s AS jsonb)) AS v "
    "WHERE s.dataset_id = %s AND s.kind = v.value ->> 0 AND s.key = v.value ->> 1 "
    "AND s.value = v.value ->> 2 AND s.n = 0"
)
_SQLITE_UPSERT = (
    "INSERT INTO imagev2_summary (dataset_id, kind, key, value, n) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (dataset_id, kind, key, value) DO UPDATE SET n = n + excluded.n"
)
_SQLITE_DROP_EMPTY = (
    "DELETE FROM imagev2_summary WHERE dataset_id = ? AND kind = ? AND key = ? AND value = ? "
    "AND n = 0"
)
_SQLITE_LOOKUP_DELETE = (
    "DELETE FROM imagev2_attribute WHERE dataset_id = ? AND key = ? AND value = ? AND image_id = ?"
)
_SQLITE_LOOKUP_INSERT = (
    "INSERT INTO imagev2_attribute (dataset_id, key, value, image_id) VALUES (?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)


class ImageIndexChanges:
    """What a batch of image writes changes in `imagev2_summary` (and `imagev2_attribute`).

    Counts are kept per (key, Python type, value), so that the canonical text is computed
    once per distinct value, not once per image; only what differs between the old and
    the new content of an image is counted.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.postgres = _dialect_of(connection) == "postgresql"
        self.lookup = not self.postgres
        self._texts: dict[tuple[type, Any], str] = {}
        self._reset()

    def _reset(self) -> None:
        self._attributes: Counter[tuple[str, type, Any]] = Counter()
        self._types: Counter[str] = Counter()
        self._lookup_removed: list[tuple[str, Any, int]] = []
        self._lookup_added: list[tuple[str, Any, int]] = []

    def added(
        self, image_id: int | None, attributes: dict[str, Any], types: dict[str, bool]
    ) -> None:
        self._count(image_id, attributes, types, 1)

    def removed(self, image_id: int, attributes: dict[str, Any], types: dict[str, bool]) -> None:
        self._count(image_id, attributes, types, -1)

    def _count(
        self, image_id: int | None, attributes: dict[str, Any], types: dict[str, bool], sign: int
    ) -> None:
        counts = self._attributes
        values = [(key, value) for key, value in attributes.items() if _indexed(value)]
        for key, value in values:
            counts[key, type(value), value] += sign
        for key in types:
            self._types[key] += sign
        if self.lookup and values:
            if image_id is None:
                raise ValueError("the attribute lookup needs the id of each image")
            target = self._lookup_added if sign > 0 else self._lookup_removed
            target.extend((key, value, image_id) for key, value in values)

    def changed(
        self,
        image_id: int,
        old_attributes: dict[str, Any],
        old_types: dict[str, bool],
        new_attributes: dict[str, Any],
        new_types: dict[str, bool],
    ) -> None:
        """One image's content went from old to new: count only what differs."""
        counts = self._attributes
        lookup = self.lookup
        for key, old in old_attributes.items():
            new = new_attributes.get(key, _MISSING)
            if new is old or (new == old and type(new) is type(old)) or not _indexed(old):
                continue
            counts[key, type(old), old] -= 1
            if lookup:
                self._lookup_removed.append((key, old, image_id))
        for key, new in new_attributes.items():
            old = old_attributes.get(key, _MISSING)
            if old is new or (old == new and type(old) is type(new)) or not _indexed(new):
                continue
            counts[key, type(new), new] += 1
            if lookup:
                self._lookup_added.append((key, new, image_id))
        if old_types.keys() != new_types.keys():
            for key in old_types.keys() - new_types.keys():
                self._types[key] -= 1
            for key in new_types.keys() - old_types.keys():
                self._types[key] += 1

    def count(self, key: str, value: Any, n: int) -> None:
        """n more images have attribute `key` = `value` (the summary only, not the lookup)."""
        if _indexed(value):
            self._attributes[key, type(value), value] += n

    def count_type(self, key: str, n: int) -> None:
        """n more images have type `key` (whether true or false)."""
        self._types[key] += n

    def _text(self, value: Any) -> str:
        cache_key = (type(value), value)
        shown = self._texts.get(cache_key)
        if shown is None:
            shown = self._texts[cache_key] = value_text(value)
        return shown

    def summary_rows(self) -> list[tuple[str, str, str, int]]:
        """(kind, key, value, change of n), non-zero, in primary-key order."""
        merged: Counter[tuple[str, str, str]] = Counter()
        for (key, _kind, value), n in self._attributes.items():
            if n:
                merged["a", key, self._text(value)] += n
        for key, n in self._types.items():
            if n:
                merged["t", key, ""] += n
        return sorted((*row, n) for row, n in merged.items() if n)

    async def write(self, dataset_id: int) -> None:
        rows = self.summary_rows()
        dropping = [row[:3] for row in rows if row[3] < 0]
        run = self.connection.exec_driver_sql
        if self.postgres:
            if rows:
                await run(_PG_UPSERT, (dataset_id, json.dumps(rows)))
            if dropping:
                await run(_PG_DROP_EMPTY, (json.dumps(dropping), dataset_id))
        else:
            if rows:
                await run(_SQLITE_UPSERT, [(dataset_id, *row) for row in rows])
            if dropping:
                await run(_SQLITE_DROP_EMPTY, [(dataset_id, *row) for row in dropping])
            # In key order, so that each page of the lookup is changed once.
            text_of = self._text
            if self._lookup_removed:
                lookup = sorted((dataset_id, k, text_of(v), i) for k, v, i in self._lookup_removed)
                await run(_SQLITE_LOOKUP_DELETE, lookup)
            if self._lookup_added:
                lookup = sorted((dataset_id, k, text_of(v), i) for k, v, i in self._lookup_added)
                await run(_SQLITE_LOOKUP_INSERT, lookup)
        self._reset()


# On SQLite, the canonical text of the values SQL can write exactly as `value_text` does:
# booleans, 64-bit integers and printable-ASCII strings (json_quote escapes `"` and `\`
# only, as json.dumps does); NULL for any other value, which Python then writes.
_SQLITE_SIMPLE_TEXT = (
    "CASE WHEN e.type IN ('true', 'false') THEN e.type "
    "WHEN e.type = 'integer' AND typeof(e.atom) = 'integer' THEN CAST(e.atom AS TEXT) "
    "WHEN e.type = 'text' AND e.atom NOT GLOB '*[^ -~]*' THEN json_quote(e.atom) END"
)


async def rebuild_image_index(session: AsyncSession, dataset_id: int) -> None:
    """Recompute a dataset's summary (and attribute lookup) from its images, from scratch.

    For images written without `ImageIndexChanges`, e.g. a bulk load straight into
    `imagev2`. Costs a pass over all the dataset's images, mostly in SQL. Not committed.
    """
    connection = await session.connection()
    run = connection.exec_driver_sql
    if _dialect_of(connection) == "postgresql":
        await run("DELETE FROM imagev2_summary WHERE dataset_id = %s", (dataset_id,))
        changes = ImageIndexChanges(connection)
        # Distinct values in SQL, their canonical text in Python: jsonb's text of a number
        # is not Python's, and 1.0 and 1.00 are one value.
        grouped = await run(
            "SELECT e.key, CAST(e.value AS text), count(*) FROM imagev2 i, "
            "jsonb_each(i.attributes) AS e WHERE i.dataset_id = %s GROUP BY 1, 2",
            (dataset_id,),
        )
        for key, shown, n in grouped:
            changes.count(key, json.loads(shown), n)
        grouped = await run(
            "SELECT k, count(*) FROM imagev2 i, jsonb_object_keys(i.types) AS k "
            "WHERE i.dataset_id = %s GROUP BY 1",
            (dataset_id,),
        )
        for key, n in grouped:
            changes.count_type(key, n)
        await changes.write(dataset_id)
        return
    await run("DELETE FROM imagev2_summary WHERE dataset_id = ?", (dataset_id,))
    await run("DELETE FROM imagev2_attribute WHERE dataset_id = ?", (dataset_id,))
    # The lookup: most values in one sorted INSERT ... SELECT, the others from Python.
    await run(
        "INSERT INTO imagev2_attribute (dataset_id, key, value, image_id) "
        f"SELECT * FROM (SELECT i.dataset_id, e.key, {_SQLITE_SIMPLE_TEXT} AS value, i.id "
        "FROM imagev2 i, json_each(i.attributes) AS e WHERE i.dataset_id = ?) "
        "WHERE value IS NOT NULL ORDER BY 1, 2, 3, 4",
        (dataset_id,),
    )
    others = await run(
        "SELECT i.id, i.attributes FROM imagev2 i WHERE i.dataset_id = ? AND EXISTS "
        f"(SELECT 1 FROM json_each(i.attributes) AS e WHERE ({_SQLITE_SIMPLE_TEXT}) IS NULL)",
        (dataset_id,),
    )
    rows = [
        (dataset_id, key, value_text(value), image_id)
        for image_id, attributes in others
        for key, value in json.loads(attributes).items()
        if _indexed(value)
    ]
    if rows:
        await run(_SQLITE_LOOKUP_INSERT, rows)
    # The summary, from the lookup (attributes) and the images (types).
    await run(
        "INSERT INTO imagev2_summary (dataset_id, kind, key, value, n) "
        "SELECT dataset_id, 'a', key, value, count(*) FROM imagev2_attribute "
        "WHERE dataset_id = ? GROUP BY key, value",
        (dataset_id,),
    )
    await run(
        "INSERT INTO imagev2_summary (dataset_id, kind, key, value, n) "
        "SELECT i.dataset_id, 't', e.key, '', count(*) FROM imagev2 i, json_each(i.types) AS e "
        "WHERE i.dataset_id = ? GROUP BY e.key",
        (dataset_id,),
    )


# ---------------------------------------------------------------- queries


def _json_path(key: str) -> str:
    return '$."' + key + '"'


def _sqlite_value_matches(column: Any, key: str, value: Any) -> ColumnElement[bool]:
    path = _json_path(key)
    kind = func.json_type(column, path)
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    if isinstance(value, int | float):
        return and_(kind.in_(("integer", "real")), func.json_extract(column, path) == value)
    return and_(kind == "text", func.json_extract(column, path) == value)


def _sqlite_lookup(dataset_id: int, key: str, values: Iterable[Any]) -> ColumnElement[bool]:
    texts = sorted({shown for value in values for shown in filter_value_texts(value)})
    matching = select(col(ImageAttribute.image_id)).where(
        ImageAttribute.dataset_id == dataset_id,
        ImageAttribute.key == key,
        col(ImageAttribute.value).in_(texts),
    )
    return col(Image.id).in_(matching)


def _pg_contains(column: Any, document: dict[str, Any]) -> ColumnElement[bool]:
    return column.op("@>")(literal(document, JSONB))


def filter_clauses(
    dialect: str,
    type_filters: dict[str, bool],
    attribute_filters: dict[str, list[Any]],
    dataset_id: int | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses selecting the images that pass the filters.

    On SQLite, give `dataset_id` so that attribute filters use the lookup table
    (without it they read every image's JSON).
    """
    clauses: list[ColumnElement[bool]] = []
    attrs, types = col(Image.attributes), col(Image.types)
    for key, wanted in type_filters.items():
        if dialect == "postgresql":
            has_true = _pg_contains(types, {key: True})
        else:
            # A missing key gives NULL, which must count as False, not as unknown.
            has_true = func.coalesce(func.json_type(types, _json_path(key)), "") == "true"
        clauses.append(has_true if wanted else ~has_true)
    for key, values in attribute_filters.items():
        if not values:
            clauses.append(false())
        elif dialect == "postgresql":
            clauses.append(or_(*(_pg_contains(attrs, {key: value}) for value in values)))
        elif dataset_id is not None:
            clauses.append(_sqlite_lookup(dataset_id, key, values))
        else:
            clauses.append(or_(*(_sqlite_value_matches(attrs, key, value) for value in values)))
    return clauses or [true()]


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def count_images(
    session: AsyncSession,
    dataset_id: int,
    type_filters: dict[str, bool] | None = None,
    attribute_filters: dict[str, list[Any]] | None = None,
    zarr_url: str | None = None,
) -> int:
    clauses = filter_clauses(
        _dialect(session), type_filters or {}, attribute_filters or {}, dataset_id
    )
    query = select(func.count()).select_from(Image).where(Image.dataset_id == dataset_id)
    query = query.where(*clauses)
    if zarr_url is not None:
        query = query.where(Image.zarr_url == zarr_url)
    return (await session.exec(query)).one()


async def query_images(
    session: AsyncSession,
    dataset_id: int,
    type_filters: dict[str, bool] | None = None,
    attribute_filters: dict[str, list[Any]] | None = None,
    zarr_url: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[Image]:
    dialect = _dialect(session)
    clauses = filter_clauses(dialect, type_filters or {}, attribute_filters or {}, dataset_id)
    order: Any = col(Image.id)
    if (
        dialect == "postgresql"
        and attribute_filters
        and await _attribute_matches(session, dataset_id, attribute_filters) <= FEW_MATCHES
    ):
        # PostgreSQL cannot estimate jsonb containment: it may walk the primary key in
        # order, filtering, which reads most of a large dataset to reach a late page.
        # With few matches, taking them all through the GIN index and sorting them is
        # cheap whatever the page; `id + 0` keeps the planner off the ordered walk.
        order = col(Image.id) + 0
    query = (
        select(Image)
        .where(Image.dataset_id == dataset_id)
        .where(*clauses)
        .order_by(order)
        .offset(offset)
    )
    if zarr_url is not None:
        query = query.where(Image.zarr_url == zarr_url)
    if limit is not None:
        query = query.limit(limit)
    return list((await session.exec(query)).all())


# Below this many images matching the attribute filters, a page is taken by sorting them.
FEW_MATCHES = 50_000


async def _attribute_matches(
    session: AsyncSession, dataset_id: int, attribute_filters: dict[str, list[Any]]
) -> int:
    """How many images at most pass the attribute filters, from the summary's counts."""
    wanted = [
        (key, shown)
        for key, values in attribute_filters.items()
        for value in values
        for shown in filter_value_texts(value)
    ]
    if not wanted:
        return 0
    connection = await session.connection()
    rows = await connection.execute(
        select(col(ImageSummary.key), func.sum(ImageSummary.n))
        .where(
            ImageSummary.dataset_id == dataset_id,
            ImageSummary.kind == "a",
            tuple_(col(ImageSummary.key), col(ImageSummary.value)).in_(wanted),
        )
        .group_by(col(ImageSummary.key))
    )
    per_key = {key: int(n) for key, n in rows}
    return min(per_key.get(key, 0) for key in attribute_filters)


async def summary(session: AsyncSession, dataset_id: int) -> tuple[dict[str, list[Any]], list[str]]:
    """Every attribute's distinct values and every type key of a dataset's images."""
    connection = await session.connection()
    rows = await connection.execute(
        text("SELECT kind, key, value FROM imagev2_summary WHERE dataset_id = :d AND n > 0"),
        {"d": dataset_id},
    )
    attributes: dict[str, list[Any]] = {}
    types: list[str] = []
    for kind, key, shown in rows:
        if kind == "t":
            types.append(key)
        else:
            attributes.setdefault(key, []).append(json.loads(shown))
    for values in attributes.values():
        values.sort(key=lambda v: (type(v).__name__, v))
    return dict(sorted(attributes.items())), sorted(types)


# ---------------------------------------------------------------- one image at a time


async def create_image(
    session: AsyncSession,
    dataset_id: int,
    zarr_url: str,
    origin: str | None,
    attributes: dict[str, Any],
    types: dict[str, bool],
) -> Image | None:
    """Add an image (not committed); None when the dataset already has one at zarr_url.

    Raises ImageTooLargeError when an attribute or type is too large."""
    check_size(attributes, types)
    await lock_images(session)
    if await count_images(session, dataset_id, zarr_url=zarr_url):
        return None
    image = Image(
        dataset_id=dataset_id, zarr_url=zarr_url, origin=origin, attributes=attributes, types=types
    )
    session.add(image)
    await session.flush()
    changes = ImageIndexChanges(await session.connection())
    changes.added(image.id, image.attributes, image.types)
    await changes.write(dataset_id)
    return image


async def update_image(
    session: AsyncSession,
    dataset_id: int,
    zarr_url: str,
    attributes: dict[str, Any] | None,
    types: dict[str, bool] | None,
) -> Image | None:
    """Replace an image's attributes and/or types (not committed); None when it is not there.

    Raises ImageTooLargeError when an attribute or type is too large."""
    check_size(attributes or {}, types or {})
    await lock_images(session)
    image = (
        await session.exec(
            select(Image)
            .where(Image.dataset_id == dataset_id, Image.zarr_url == zarr_url)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    if image is None or image.id is None:
        return None
    old_attributes, old_types = image.attributes, image.types
    if attributes is not None:
        image.attributes = attributes
    if types is not None:
        image.types = types
    await session.flush()
    changes = ImageIndexChanges(await session.connection())
    changes.changed(image.id, old_attributes, old_types, image.attributes, image.types)
    await changes.write(dataset_id)
    return image


async def delete_image(session: AsyncSession, dataset_id: int, zarr_url: str) -> bool:
    """Remove an image (not committed); False when it is not there."""
    await lock_images(session)
    deleted = (
        await session.exec(
            delete(Image)
            .where(col(Image.dataset_id) == dataset_id, col(Image.zarr_url) == zarr_url)
            .returning(col(Image.id), col(Image.attributes), col(Image.types))
        )
    ).all()
    changes = ImageIndexChanges(await session.connection())
    for image_id, attributes, types in deleted:
        changes.removed(image_id, attributes, types)
    await changes.write(dataset_id)
    return bool(deleted)


async def delete_all_images(session: AsyncSession, dataset_id: int) -> None:
    """Remove every image of a dataset and its derived rows (not committed)."""
    for model in (ImageAttribute, ImageSummary, Image):
        await session.exec(delete(model).where(col(model.dataset_id) == dataset_id))
