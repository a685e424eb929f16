"""What each job used, recorded by the runner when the job ends (admin accounting)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Integer
from sqlmodel import Field, SQLModel

from ._types import UTCDateTime, created_at_field, json_field


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


class SlurmUsage(SQLModel, table=True):
    """What one SLURM job used, as `sacct` reported it once the job had ended.

    Like the other records it outlives the job's row. One row per `slurmjob` row (a batch of
    units of one workflow task), so efficiency adds up per job, per workflow task and per
    task. Memory and time limits are what the job asked for, for the whole batch.
    """

    __tablename__ = "slurmusage"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_oauth.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    job_id: int | None = Field(default=None, sa_column=Column(Integer, index=True))
    # The slurmjob row it measures; unique, so two runners never record one job twice.
    slurmjob_id: int = Field(sa_column=Column(Integer, nullable=False, unique=True))
    workflowtask_id: int | None = Field(default=None, sa_column=Column(Integer, index=True))
    task_id: int | None = Field(default=None, sa_column=Column(Integer, index=True))
    slurm_job_id: str = Field(max_length=64)
    account: str | None = Field(default=None, max_length=256)
    partition: str | None = Field(default=None, max_length=256)
    state: str = Field(max_length=32)
    num_units: int = 0
    # Units the batch ran at once (its parallel tasks): per-unit figures divide by it.
    parallel_units: int = 1
    elapsed_seconds: int = 0
    cpu_seconds: float = 0.0
    alloc_cpus: int = 0
    max_rss_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    req_mem_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    time_limit_seconds: int | None = None
    timestamp_ended: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    timestamp_recorded: datetime = created_at_field()
