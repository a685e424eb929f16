"""Jobs: one workflow applied to one dataset, with snapshots taken at submission."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from ._types import created_at_field, json_field, optional_timestamp_field


class JobStatus(StrEnum):
    SUBMITTED = "submitted"
    RUNNING = "running"
    STOPPING = "stopping"
    DONE = "done"
    FAILED = "failed"


ACTIVE_JOB_STATUSES = (JobStatus.SUBMITTED, JobStatus.RUNNING, JobStatus.STOPPING)


class Job(SQLModel, table=True):
    __tablename__ = "jobv2"
    __table_args__ = (Index("ix_jobv2_status", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("projectv2.id", ondelete="SET NULL"), index=True),
    )
    workflow_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("workflowv2.id", ondelete="SET NULL"), index=True),
    )
    dataset_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("datasetv2.id", ondelete="SET NULL"), index=True),
    )
    user_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("user_oauth.id", ondelete="SET NULL"), index=True),
    )
    user_email: str = Field(max_length=320)
    slurm_account: str | None = Field(default=None, max_length=255)
    worker_init: str | None = Field(default=None, sa_column=Column(Text))
    first_task_index: int
    last_task_index: int
    attribute_filters: dict[str, Any] = json_field(dict)
    type_filters: dict[str, bool] = json_field(dict)
    project_dump: dict[str, Any] = json_field(dict)
    workflow_dump: dict[str, Any] = json_field(dict)
    dataset_dump: dict[str, Any] = json_field(dict)
    status: str = Field(default=JobStatus.SUBMITTED, sa_column=Column(String(16), nullable=False))
    start_timestamp: datetime = created_at_field()
    end_timestamp: datetime | None = optional_timestamp_field()
    working_dir: str | None = Field(default=None, max_length=4096)
    working_dir_user: str | None = Field(default=None, max_length=4096)
    log: str | None = Field(default=None, sa_column=Column(Text))
    executor_error_log: str | None = Field(default=None, sa_column=Column(Text))
    runner_id: str | None = Field(default=None, max_length=255)
    runner_heartbeat: datetime | None = optional_timestamp_field()
