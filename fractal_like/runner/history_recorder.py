"""Provenance rows written by the engine: runs, units in bulk, each image's latest unit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..models import HistoryImageCache, HistoryRun, HistoryUnit, UnitStatus, table_of

RUNS = table_of(HistoryRun)
UNITS = table_of(HistoryUnit)
CACHE = table_of(HistoryImageCache)
CHUNK = 5000
FINAL = (UnitStatus.DONE, UnitStatus.FAILED)  # a unit's status, once written, never changes again


def now() -> datetime:
    return datetime.now(UTC)


async def find_or_create_run(
    connection: AsyncConnection,
    job_id: int,
    dataset_id: int,
    wftask: dict[str, Any],
) -> tuple[int, str]:
    """The run of this job's workflow task: (id, status); made if it does not exist yet."""
    row = (
        await connection.execute(
            select(RUNS.c.id, RUNS.c.status).where(
                RUNS.c.job_id == job_id, RUNS.c.workflowtask_id == wftask["id"]
            )
        )
    ).first()
    if row is not None:
        return row[0], row[1]
    result = await connection.execute(
        insert(RUNS)
        .values(
            job_id=job_id,
            dataset_id=dataset_id,
            workflowtask_id=wftask["id"],
            task_id=wftask["task_id"],
            workflowtask_dump=wftask,
            task_group_dump={"pkg_name": wftask.get("pkg_name"), "version": wftask.get("version")},
            status=UnitStatus.SUBMITTED,
            timestamp_started=now(),
        )
        .returning(RUNS.c.id)
    )
    return result.scalar_one(), UnitStatus.SUBMITTED


async def existing_units(
    connection: AsyncConnection, run_id: int
) -> dict[tuple[str, int], tuple[int, str]]:
    rows = await connection.execute(
        select(UNITS.c.kind, UNITS.c.index, UNITS.c.id, UNITS.c.status).where(
            UNITS.c.history_run_id == run_id
        )
    )
    return {(kind, index): (unit_id, status) for kind, index, unit_id, status in rows.all()}


async def create_units(
    connection: AsyncConnection, run_id: int, rows: list[dict[str, Any]]
) -> dict[tuple[str, int], int]:
    """Insert units in bulk; returns their ids by (kind, index)."""
    ids: dict[tuple[str, int], int] = {}
    stamp = now()
    for start in range(0, len(rows), CHUNK):
        chunk = [
            {
                **row,
                "history_run_id": run_id,
                "status": UnitStatus.SUBMITTED,
                "timestamp_started": stamp,
            }
            for row in rows[start : start + CHUNK]
        ]
        # Each returned row names its unit, so their order does not matter; asking for it
        # (sort_by_parameter_order) makes SQLite insert row by row: 2,000 units took ~1 s.
        result = await connection.execute(
            insert(UNITS).returning(UNITS.c.id, UNITS.c.kind, UNITS.c.index), chunk
        )
        for unit_id, kind, index in result.all():
            ids[(kind, index)] = unit_id
    await connection.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(
            num_units_total=select(func.count())
            .where(UNITS.c.history_run_id == run_id)
            .scalar_subquery()
        )
    )
    return ids


async def record_results(
    connection: AsyncConnection,
    run_id: int,
    results: list[tuple[int, str, str | None]],
    warm_ids: list[int] | None = None,
) -> None:
    """(unit id, status, error) for units that ended; then the run's counters.

    `warm_ids`: those of them that ran from a warm parent (created with warm false).
    A unit's final status is written once: the counters grow by the rows that changed,
    without counting the run's units again (`finish_run` recounts them at the end).
    """
    if not results:
        return
    stamp = now()
    for start in range(0, len(warm_ids or []), CHUNK):
        await connection.execute(
            update(UNITS)
            .where(UNITS.c.id.in_((warm_ids or [])[start : start + CHUNK]))
            .values(warm=True)
        )
    added: dict[str, int] = {UnitStatus.DONE: 0, UnitStatus.FAILED: 0}
    not_final = UNITS.c.status.not_in(FINAL)
    for final in FINAL:
        ids_plain = [unit_id for unit_id, st, error in results if st == final and error is None]
        for start in range(0, len(ids_plain), CHUNK):
            result = await connection.execute(
                update(UNITS)
                .where(UNITS.c.id.in_(ids_plain[start : start + CHUNK]), not_final)
                .values(status=final, timestamp_ended=stamp)
            )
            added[final] += result.rowcount
    for unit_id, status, error in results:
        if error is not None:
            result = await connection.execute(
                update(UNITS)
                .where(UNITS.c.id == unit_id, not_final)
                .values(status=status, error=error, timestamp_ended=stamp)
            )
            added[status] += result.rowcount
    if added[UnitStatus.DONE] or added[UnitStatus.FAILED]:
        await connection.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(
                num_units_done=RUNS.c.num_units_done + added[UnitStatus.DONE],
                num_units_failed=RUNS.c.num_units_failed + added[UnitStatus.FAILED],
            )
        )


async def refresh_counts(connection: AsyncConnection, run_id: int) -> None:
    def count(status: str):
        return (
            select(func.count())
            .where(UNITS.c.history_run_id == run_id, UNITS.c.status == status)
            .scalar_subquery()
        )

    await connection.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(num_units_done=count(UnitStatus.DONE), num_units_failed=count(UnitStatus.FAILED))
    )


async def finish_run(connection: AsyncConnection, run_id: int, status: str) -> None:
    await refresh_counts(connection, run_id)
    await connection.execute(
        update(RUNS).where(RUNS.c.id == run_id).values(status=status, timestamp_ended=now())
    )


async def remember_latest_units(
    connection: AsyncConnection,
    dataset_id: int,
    workflowtask_id: int,
    latest: dict[str, int],
) -> None:
    """Each image's latest unit for this workflow task (upserted in bulk)."""
    if not latest:
        return
    stamp = now()
    rows = [
        {
            "zarr_url": url,
            "dataset_id": dataset_id,
            "workflowtask_id": workflowtask_id,
            "latest_history_unit_id": unit_id,
            "timestamp_updated": stamp,
        }
        for url, unit_id in latest.items()
    ]
    dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(rows), CHUNK):
        statement = dialect_insert(CACHE)
        statement = statement.on_conflict_do_update(
            index_elements=["zarr_url", "dataset_id", "workflowtask_id"],
            set_={
                "latest_history_unit_id": statement.excluded.latest_history_unit_id,
                "timestamp_updated": statement.excluded.timestamp_updated,
            },
        )
        await connection.execute(statement, rows[start : start + CHUNK])
