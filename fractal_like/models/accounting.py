"""What each job used, recorded by the runner when the job ends (admin accounting)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer
from sqlmodel import Field, SQLModel

from ._types import created_at_field, json_field


class AccountingRecord(SQLModel, table=True):
    """One ended job: how many units (Fractal's num_tasks) ran and images it created."""

    __tablename__ = "accountingrecord"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_oauth.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    # Kept when the job row is deleted: the record is the bill, not the job.
    job_id: int | None = Field(default=None, sa_column=Column(Integer, index=True))
    resource_id: int | None = Field(default=None, sa_column=Column(Integer, index=True))
    timestamp: datetime = created_at_field()
    num_tasks: int = 0
    num_new_images: int = 0


class AccountingRecordSlurm(SQLModel, table=True):
    """One ended job's SLURM job ids."""

    __tablename__ = "accountingrecordslurm"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_oauth.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    job_id: int | None = Field(default=None, sa_column=Column(Integer, index=True))
    resource_id: int | None = Field(default=None, sa_column=Column(Integer, index=True))
    timestamp: datetime = created_at_field()
    slurm_job_ids: list[int] = json_field(list)
