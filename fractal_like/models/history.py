"""Provenance: runs of each workflow task, their units, and each image's latest status."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from ._types import created_at_field, json_field, optional_timestamp_field


class UnitStatus(StrEnum):
    """The status of a history unit, and of a history run (the same three values)."""

    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"


class HistoryRun(SQLModel, table=True):
    __tablename__ = "historyrun"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("jobv2.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    dataset_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("datasetv2.id", ondelete="CASCADE"), index=True),
    )
    workflowtask_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("workflowtaskv2.id", ondelete="SET NULL"), index=True),
    )
    task_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("taskv2.id", ondelete="SET NULL")),
    )
    workflowtask_dump: dict[str, Any] = json_field(dict)
    task_group_dump: dict[str, Any] = json_field(dict)
    status: str = Field(default=UnitStatus.SUBMITTED, max_length=16)
    num_units_total: int = 0
    num_units_done: int = 0
    num_units_failed: int = 0
    timestamp_started: datetime = created_at_field()
    timestamp_ended: datetime | None = optional_timestamp_field()


class HistoryUnit(SQLModel, table=True):
    __tablename__ = "historyunit"

    id: int | None = Field(default=None, primary_key=True)
    history_run_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("historyrun.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    index: int = 0
    kind: str = Field(default="parallel", max_length=16)
    status: str = Field(default=UnitStatus.SUBMITTED, max_length=16)
    zarr_urls: list[str] = json_field(list)
    logfile: str | None = Field(default=None, max_length=4096)
    slurm_job_id: str | None = Field(default=None, max_length=64)
    warm: bool | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    timestamp_started: datetime | None = optional_timestamp_field()
    timestamp_ended: datetime | None = optional_timestamp_field()


class HistoryImageCache(SQLModel, table=True):
    """The latest unit that touched an image for a given workflow task."""

    __tablename__ = "historyimagecache"
    __table_args__ = (Index("ix_historyimagecache_wftask", "dataset_id", "workflowtask_id"),)

    zarr_url: str = Field(sa_column=Column(String(4096), primary_key=True))
    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("datasetv2.id", ondelete="CASCADE"), primary_key=True)
    )
    workflowtask_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("workflowtaskv2.id", ondelete="CASCADE"), primary_key=True
        )
    )
    latest_history_unit_id: int = Field(
        sa_column=Column(Integer, ForeignKey("historyunit.id", ondelete="CASCADE"), nullable=False)
    )
    timestamp_updated: datetime = created_at_field()
