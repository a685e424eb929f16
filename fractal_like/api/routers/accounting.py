"""Accounting under /admin/v2/accounting/ (superusers only): what each user's jobs used."""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter

from ...schemas.accounting import AccountingQuery, AccountingQuerySLURM, AccountingRecordRead
from ...schemas.history import Page
from ...services import accounting as service
from ..deps import SessionDep
from ..query_params import PaginationDep, utc_bound
from ..request_body import GuardedRoute
from ..users import Superuser

router = APIRouter(prefix="/admin/v2/accounting", tags=["admin"], route_class=GuardedRoute)
Query = TypeVar("Query", bound=AccountingQuery)


def _bounded(query: Query) -> Query:
    # Bounds with an offset that do not exist in UTC (year 1 at +05:00) are a 422.
    query.timestamp_min = utc_bound(query.timestamp_min, "timestamp_min")
    query.timestamp_max = utc_bound(query.timestamp_max, "timestamp_max")
    return query


@router.post("/", response_model=Page[AccountingRecordRead])
async def query_accounting(
    query: AccountingQuery, _admin: Superuser, session: SessionDep, pages: PaginationDep
) -> Page[AccountingRecordRead]:
    total, size, records = await service.list_records(
        session, _bounded(query), pages.page, pages.page_size
    )
    items = [AccountingRecordRead.model_validate(record) for record in records]
    return Page[AccountingRecordRead](
        current_page=pages.page, page_size=size, total_count=total, items=items
    )


@router.post("/slurm/", response_model=list[int])
async def query_accounting_slurm(
    query: AccountingQuerySLURM, _admin: Superuser, session: SessionDep
) -> list[int]:
    """Every SLURM job id of the matching jobs, as one flat list (Fractal's shape)."""
    return await service.slurm_job_ids(session, _bounded(query))
