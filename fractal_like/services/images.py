"""Image queries and updates, done in SQL on both databases.

Filters follow Fractal's semantics: an image passes `type_filters` when
`types.get(key, False) == value` for every key, and `attribute_filters` when
`attributes.get(key) in values` for every key. On PostgreSQL they use JSONB
containment; on SQLite, json_extract/json_type.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, literal, or_, text, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Image


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


def _pg_contains(column: Any, document: dict[str, Any]) -> ColumnElement[bool]:
    return column.op("@>")(literal(document, JSONB))


def filter_clauses(
    dialect: str, type_filters: dict[str, bool], attribute_filters: dict[str, list[Any]]
) -> list[ColumnElement[bool]]:
    """WHERE clauses selecting the images that pass the filters."""
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
        if dialect == "postgresql":
            options = [_pg_contains(attrs, {key: value}) for value in values]
        else:
            options = [_sqlite_value_matches(attrs, key, value) for value in values]
        clauses.append(or_(*options) if options else false())
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
    query = (
        select(func.count())
        .select_from(Image)
        .where(Image.dataset_id == dataset_id)
        .where(*filter_clauses(_dialect(session), type_filters or {}, attribute_filters or {}))
    )
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
    query = (
        select(Image)
        .where(Image.dataset_id == dataset_id)
        .where(*filter_clauses(_dialect(session), type_filters or {}, attribute_filters or {}))
        .order_by(col(Image.id))
        .offset(offset)
    )
    if zarr_url is not None:
        query = query.where(Image.zarr_url == zarr_url)
    if limit is not None:
        query = query.limit(limit)
    return list((await session.exec(query)).all())


async def summary(session: AsyncSession, dataset_id: int) -> tuple[dict[str, list[Any]], list[str]]:
    """Every attribute's distinct values and every type key of a dataset's images."""
    if _dialect(session) == "postgresql":
        return await _summary_pg(session, dataset_id)
    return await _summary_sqlite(session, dataset_id)


async def _summary_pg(
    session: AsyncSession, dataset_id: int
) -> tuple[dict[str, list[Any]], list[str]]:
    attr_rows = await session.execute(
        text(
            "SELECT DISTINCT e.key, e.value FROM imagev2 i, jsonb_each(i.attributes) e "
            "WHERE i.dataset_id = :d"
        ),
        {"d": dataset_id},
    )
    type_rows = await session.execute(
        text("SELECT DISTINCT jsonb_object_keys(types) FROM imagev2 WHERE dataset_id = :d"),
        {"d": dataset_id},
    )
    return _collect(attr_rows.all()), sorted(row[0] for row in type_rows.all())


async def _summary_sqlite(
    session: AsyncSession, dataset_id: int
) -> tuple[dict[str, list[Any]], list[str]]:
    attr_rows = await session.execute(
        text(
            "SELECT DISTINCT e.key, e.value, e.type FROM imagev2 i, json_each(i.attributes) e "
            "WHERE i.dataset_id = :d"
        ),
        {"d": dataset_id},
    )
    type_rows = await session.execute(
        text("SELECT DISTINCT e.key FROM imagev2 i, json_each(i.types) e WHERE i.dataset_id = :d"),
        {"d": dataset_id},
    )
    pairs = [
        (key, bool(value) if kind in ("true", "false") else value)
        for key, value, kind in attr_rows.all()
    ]
    return _collect(pairs), sorted(row[0] for row in type_rows.all())


def _collect(pairs: Any) -> dict[str, list[Any]]:
    result: dict[str, list[Any]] = {}
    for key, value in pairs:
        values = result.setdefault(key, [])
        if not any(type(v) is type(value) and v == value for v in values):
            values.append(value)
    for values in result.values():
        values.sort(key=lambda v: (type(v).__name__, v))
    return dict(sorted(result.items()))
