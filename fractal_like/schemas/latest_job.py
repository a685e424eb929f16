"""The latest job of a workflow on a dataset, with the status of each of its tasks."""

from __future__ import annotations

from pydantic import Field

from .history import WorkflowTaskStatus
from .job import JobRead


class JobWithTaskStatuses(JobRead):
    """A job as JobRead shows it, and each workflow task's status as `status/` shows it
    (null for a task never run on that dataset)."""

    task_statuses: dict[int, WorkflowTaskStatus | None] = Field(default_factory=dict)
