"""Fractal's pages of a query: the total count, the page size and one page of rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession


async def page_of(
    session: AsyncSession, query: Select[Any], page: int, page_size: int | None
) -> tuple[int, int, list[Any]]:
    """(total count, page size, the page's rows) of a query; no page_size means all rows."""
    total = (
        await session.exec(select(func.count()).select_from(query.order_by(None).subquery()))
    ).one()
    size = page_size or total
    # The query may select one model or several columns: exec's overloads take one kind.
    page_query = query.offset((page - 1) * size).limit(size)
    rows = (await session.exec(page_query)).all()  # type: ignore[call-overload]
    return total, size, list(rows)
