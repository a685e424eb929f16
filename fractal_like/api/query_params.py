"""Query parameters many routes share: Fractal's pages, and time bounds read as UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query
from pydantic import BaseModel

from ..schemas._base import PageNumber

MAX_PAGE_SIZE = 100_000


class Pagination(BaseModel):
    page: int
    page_size: int | None


def pagination(
    page: PageNumber = 1,
    page_size: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
) -> Pagination:
    if page_size is None and page > 1:
        raise HTTPException(422, detail=f"page={page} needs a page_size")
    return Pagination(page=page, page_size=page_size)


PaginationDep = Annotated[Pagination, Depends(pagination)]


def utc_bound(value: datetime | None, name: str) -> datetime | None:
    # A bound without an offset is read as UTC, as every stored timestamp is.
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise HTTPException(422, detail=f"{name} is out of range") from None
