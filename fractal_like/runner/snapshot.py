"""A job's snapshot (taken at submission), read through typed models.

The stored JSON keeps its shape (`services/jobs.py` writes it; a job written by an older
runner must still be read after a restart): each entry of `workflow_dump["task_list"]` is
flat, the task's fields beside the workflow task's, some of them prefixed (`task_name`,
`task_meta_parallel`). These models give them names of their own.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ..models import Job


class SnapshotError(Exception):
    """The job's snapshot cannot be run; the message says why in plain words."""


def _empty_if_none(value: Any) -> Any:
    return {} if value is None else value


Mapping = Annotated[dict[str, Any], BeforeValidator(_empty_if_none)]
TypeFlags = Annotated[dict[str, bool], BeforeValidator(_empty_if_none)]


class _Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True)


class SnapshotTask(_Snapshot):
    """The task a workflow task runs, as it was when the job was submitted."""

    id: int | None = Field(default=None, validation_alias="task_id")
    name: str = Field(validation_alias="task_name")
    type: str = Field(validation_alias="task_type")
    pkg_name: str | None = None
    version: str | None = None
    command_non_parallel: str | None = None
    command_parallel: str | None = None
    # The task's own meta (its manifest's): the runner reads warm_start there.
    meta_non_parallel: Mapping = Field(default={}, validation_alias="task_meta_non_parallel")
    meta_parallel: Mapping = Field(default={}, validation_alias="task_meta_parallel")
    input_types: TypeFlags = {}
    output_types: TypeFlags = {}

    def meta_for(self, parallel: bool) -> dict[str, Any]:
        return self.meta_parallel if parallel else self.meta_non_parallel

    def command(self, parallel: bool) -> str:
        command = self.command_parallel if parallel else self.command_non_parallel
        if not command:
            kind = "parallel" if parallel else "non-parallel"
            raise SnapshotError(f"task {self.name!r} ({self.type}) has no {kind} command")
        return command


class SnapshotWorkflowTask(_Snapshot):
    id: int
    order: int
    args_non_parallel: Mapping = {}
    args_parallel: Mapping = {}
    meta_non_parallel: Mapping = {}
    meta_parallel: Mapping = {}
    type_filters: TypeFlags = {}
    task: SnapshotTask
    # The entry as stored: the history keeps it as the run's workflowtask_dump.
    stored: dict[str, Any] = Field(repr=False)

    def meta_for(self, parallel: bool) -> dict[str, Any]:
        return self.meta_parallel if parallel else self.meta_non_parallel

    @model_validator(mode="before")
    @classmethod
    def _from_flat_entry(cls, data: Any) -> Any:
        if isinstance(data, dict) and "stored" not in data:
            return {**data, "task": data, "stored": data}
        return data


class JobSnapshot(_Snapshot):
    zarr_dir: str
    workflow_tasks: list[SnapshotWorkflowTask]  # the ones the job runs, in order

    @classmethod
    def of(cls, job: Job) -> JobSnapshot:
        """The job's snapshot; SnapshotError says why it cannot be read."""
        task_list = (job.workflow_dump or {}).get("task_list") or []
        chosen = task_list[job.first_task_index : job.last_task_index + 1]
        expected = max(0, job.last_task_index - job.first_task_index + 1)
        if job.first_task_index < 0 or len(chosen) != expected:
            raise SnapshotError(
                f"the job runs workflow tasks {job.first_task_index} to {job.last_task_index}, "
                f"but its workflow snapshot holds {len(task_list)}"
            )
        try:
            return cls(zarr_dir=(job.dataset_dump or {}).get("zarr_dir", ""), workflow_tasks=chosen)
        except ValidationError as error:
            raise SnapshotError(f"the job's snapshot cannot be read: {error}") from None
