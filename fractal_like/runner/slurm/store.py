"""The `slurmjob` rows: written before sbatch, completed after, read back on restart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ...models import HistoryUnit, SlurmJob, UnitStatus, table_of

JOBS = table_of(SlurmJob)
UNITS = table_of(HistoryUnit)


@dataclass
class SlurmJobRow:
    id: int
    name: str
    slurm_job_id: str | None
    status: str
    unit_ids: list[int]
    folder: str


class SlurmJobStore:
    def __init__(self, engine: AsyncEngine, job_id: int) -> None:
        self.engine = engine
        self.job_id = job_id

    async def open_rows(self, run_id: int) -> list[SlurmJobRow]:
        """The SLURM jobs of this run that had not ended when the last runner stopped."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(
                    JOBS.c.id,
                    JOBS.c.name,
                    JOBS.c.slurm_job_id,
                    JOBS.c.status,
                    JOBS.c.unit_ids,
                    JOBS.c.folder,
                )
                .where(JOBS.c.history_run_id == run_id, JOBS.c.status != "ended")
                .order_by(JOBS.c.id)
            )
            return [SlurmJobRow(*row) for row in rows.all()]

    async def count(self, run_id: int) -> int:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(func.count()).select_from(JOBS).where(JOBS.c.history_run_id == run_id)
            )
            return int(result.scalar_one())

    async def add(
        self,
        run_id: int,
        name: str,
        unit_ids: list[int],
        folder: str,
        parallel_units: int | None = None,
    ) -> int:
        """Record a SLURM job about to be submitted (committed before sbatch runs)."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                insert(JOBS)
                .values(
                    job_id=self.job_id,
                    history_run_id=run_id,
                    name=name,
                    status="submitting",
                    unit_ids=unit_ids,
                    folder=folder,
                    parallel_units=parallel_units,
                    timestamp_created=datetime.now(UTC),
                )
                .returning(JOBS.c.id)
            )
            return int(result.scalar_one())

    async def submitted(self, row_id: int, slurm_job_id: str, unit_ids: list[int]) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(JOBS)
                .where(JOBS.c.id == row_id)
                .values(slurm_job_id=slurm_job_id, status=UnitStatus.SUBMITTED)
            )
            await connection.execute(
                update(UNITS).where(UNITS.c.id.in_(unit_ids)).values(slurm_job_id=slurm_job_id)
            )

    async def ended(self, row_id: int) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(update(JOBS).where(JOBS.c.id == row_id).values(status="ended"))
