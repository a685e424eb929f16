"""Jobs: a workflow applied to a dataset."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from ..schemas.dataset import AttributeFilters
from ..worker_init import check_worker_init
from ._base import Index, ReadModel, StrictModel, TypeFilters, UTCTimestamp

# Only the checked forms of worker_init.py: a refused line is a 422 that names it.
WorkerInit = Annotated[str, StringConstraints(max_length=4096), AfterValidator(check_worker_init)]


class FractalJobStatus(StrEnum):
    """The job statuses of Fractal's API. Its clients treat only `submitted` as live (the
    web page offers Stop and keeps polling for it alone), so a job we call running or
    stopping reads as submitted there; our `progress/` route tells them apart."""

    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"


def fractal_job_status(status: str) -> FractalJobStatus:
    ended = (FractalJobStatus.DONE, FractalJobStatus.FAILED)
    return FractalJobStatus(status) if status in ended else FractalJobStatus.SUBMITTED


FractalJobStatusField = Annotated[FractalJobStatus, BeforeValidator(fractal_job_status)]


class JobCreate(StrictModel):
    worker_init: WorkerInit | None = None
    first_task_index: Index | None = None
    last_task_index: Index | None = None
    slurm_account: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    attribute_filters: AttributeFilters = Field(default_factory=dict)
    type_filters: TypeFilters = Field(default_factory=dict)


class JobRead(ReadModel):
    id: int
    project_id: int | None
    project_dump: dict[str, Any]
    user_email: str
    slurm_account: str | None
    workflow_id: int | None
    workflow_dump: dict[str, Any]
    dataset_id: int | None
    dataset_dump: dict[str, Any]
    start_timestamp: UTCTimestamp
    end_timestamp: UTCTimestamp | None
    status: FractalJobStatusField
    log: str | None
    executor_error_log: str | None = None
    working_dir: str | None
    working_dir_user: str | None
    first_task_index: int
    last_task_index: int
    worker_init: str | None
    attribute_filters: dict[str, Any]
    type_filters: dict[str, bool]
