"""Provenance reads: the status of each workflow task, its runs, units and images.

The shapes follow Fractal's `status/…` routes. Units may be `running` in our database;
Fractal knows only submitted/done/failed, so a running unit is reported as `submitted`
(its `timestamp_started` tells it has begun).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Generic, TypeVar

from ..models.history import UnitStatus
from ._base import Id, PathStr, ReadModel, RequestModel, UTCTimestamp
from .dataset import ImageFilters

T = TypeVar("T")

# The pseudo-attribute that carries an image's status in `status/images/` (Fractal's name).
IMAGE_STATUS_KEY = "__wftask_dataset_image_status__"


class ImageStatus(StrEnum):
    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"
    UNSET = "unset"


class WorkflowTaskStatus(ReadModel):
    """One workflow task in `GET status/`: only `status` while another job is on it."""

    status: str
    num_available_images: int | None = None
    num_submitted_images: int = 0
    num_done_images: int = 0
    num_failed_images: int = 0


class HistoryRunReadAggregated(ReadModel):
    id: int
    job_id: int
    status: str
    timestamp_started: UTCTimestamp
    timestamp_ended: UTCTimestamp | None = None
    workflowtask_dump: dict[str, Any]
    num_submitted_units: int = 0
    num_done_units: int = 0
    num_failed_units: int = 0
    num_units_with_warnings: int = 0
    args_schema_parallel: dict[str, Any] | None = None
    args_schema_non_parallel: dict[str, Any] | None = None
    version: str | None = None


class HistoryUnitRead(ReadModel):
    id: int
    logfile: str | None = None
    status: UnitStatus
    zarr_urls: list[str]
    has_warnings: bool = False
    index: int
    kind: str
    slurm_job_id: str | None = None
    error: str | None = None
    timestamp_started: UTCTimestamp | None = None
    timestamp_ended: UTCTimestamp | None = None


class Page(ReadModel, Generic[T]):
    """Fractal's paginated answer: `page_size` is the total count when none was asked."""

    current_page: int
    page_size: int
    total_count: int
    items: list[T]


class StatusImage(ReadModel):
    zarr_url: str
    origin: str | None = None
    attributes: dict[str, Any]
    types: dict[str, bool]
    # Only with `include_warnings=true`: whether the log of the unit that last processed
    # the image for this workflow task mentions a warning.
    has_warnings: bool | None = None


class StatusImagePage(Page[StatusImage]):
    attributes: dict[str, list[Any]]
    types: list[str]


class StatusImageQuery(ImageFilters):
    """Filters of `status/images/`; `attribute_filters` may hold IMAGE_STATUS_KEY."""


class ImageLogRequest(RequestModel):
    """Fractal's ImageLogsRequest: which image's log, for which workflow task and dataset."""

    workflowtask_id: Id
    dataset_id: Id
    zarr_url: PathStr


class TaskProgress(ReadModel):
    """One workflow task of a job: `pending` before it starts, `skipped` if it never will."""

    workflowtask_id: int | None
    task_name: str | None
    order: int | None
    status: str
    num_units_total: int = 0
    num_units_done: int = 0
    num_units_failed: int = 0


class JobProgress(ReadModel):
    job_id: int
    status: str
    tasks: list[TaskProgress]
