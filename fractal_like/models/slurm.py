"""SLURM jobs the runner submitted: written before `sbatch` runs, so a restart finds them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from ._types import created_at_field, json_field


class SlurmJob(SQLModel, table=True):
    """One `sbatch` call: a batch of units of one history run.

    `status`: `submitting` (the row exists, sbatch may or may not have run: a restarted
    runner looks the job up by its unique `name`), `submitted` (SLURM gave `slurm_job_id`),
    `ended` (every unit of the batch has a result).
    """

    __tablename__ = "slurmjob"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("jobv2.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    history_run_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("historyrun.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = Field(sa_column=Column(String(128), unique=True, nullable=False))
    slurm_job_id: str | None = Field(default=None, max_length=64)
    status: str = Field(default="submitting", max_length=16)
    unit_ids: list[int] = json_field(list)
    # Units the batch runs at once: per-unit usage is the job's divided by it.
    parallel_units: int | None = None
    folder: str = Field(sa_column=Column(String(4096), nullable=False))
    timestamp_created: datetime = created_at_field()
