"""Workflows, their tasks, export/import, and workflow templates."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from ._base import (
    MAX_INT,
    Id,
    Index,
    JsonDict,
    LongStr,
    NonEmptyStr,
    ReadModel,
    RequestModel,
    StrictModel,
    TypeFilters,
    UTCTimestamp,
    check_json,
    omittable,
)
from .history import Page
from .project import ProjectRead
from .task import TaskRead

MAX_WORKFLOW_TASKS = 500
_RESERVED_NON_PARALLEL = {"zarr_urls", "zarr_dir"}
_RESERVED_PARALLEL = {"zarr_url", "init_args"}


def _no_reserved(reserved: set[str]) -> Any:
    def check(value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            clash = sorted(reserved & set(value))
            if clash:
                raise ValueError(f"these arguments are set by the runner, not by you: {clash}")
        return value

    return check


ArgsNonParallel = Annotated[JsonDict, AfterValidator(_no_reserved(_RESERVED_NON_PARALLEL))]
ArgsParallel = Annotated[JsonDict, AfterValidator(_no_reserved(_RESERVED_PARALLEL))]


class WorkflowCreate(StrictModel):
    name: NonEmptyStr
    description: LongStr | None = None


class WorkflowUpdate(StrictModel):
    """Null clears the description and leaves the order as it is."""

    name: NonEmptyStr = omittable()
    description: LongStr | None = None
    is_starred: bool = omittable()
    reordered_workflowtask_ids: list[Id] | None = Field(default=None, max_length=MAX_WORKFLOW_TASKS)


class WorkflowTaskCreate(StrictModel):
    task_id: Id
    meta_non_parallel: JsonDict | None = None
    meta_parallel: JsonDict | None = None
    args_non_parallel: ArgsNonParallel | None = None
    args_parallel: ArgsParallel | None = None
    type_filters: TypeFilters = Field(default_factory=dict)
    alias: NonEmptyStr | None = None
    description: LongStr | None = None


class WorkflowTaskUpdate(StrictModel):
    """Null clears meta, arguments, alias and description; type_filters cannot be null."""

    meta_non_parallel: JsonDict | None = None
    meta_parallel: JsonDict | None = None
    args_non_parallel: ArgsNonParallel | None = None
    args_parallel: ArgsParallel | None = None
    type_filters: TypeFilters = omittable()
    alias: NonEmptyStr | None = None
    description: LongStr | None = None


class WorkflowTaskRead(ReadModel):
    id: int
    workflow_id: int
    order: int
    meta_non_parallel: dict[str, Any] | None
    meta_parallel: dict[str, Any] | None
    args_non_parallel: dict[str, Any] | None
    args_parallel: dict[str, Any] | None
    type_filters: dict[str, bool]
    task_type: str
    task_id: int
    task: TaskRead
    alias: str | None = None
    description: str | None = None
    warning: str | None = None


class WorkflowRead(ReadModel):
    id: int
    name: str
    project_id: int
    is_starred: bool
    task_list: list[WorkflowTaskRead]
    project: ProjectRead
    timestamp_created: UTCTimestamp
    description: str | None = None
    template_id: int | None = None


PkgName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class TaskReference(StrictModel):
    """How an exported workflow names a task: by package, version and name (or legacy source)."""

    pkg_name: PkgName | None = None
    version: Annotated[str, StringConstraints(max_length=255)] | None = None
    name: PkgName | None = None
    source: Annotated[str, StringConstraints(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _enough(self) -> TaskReference:
        if self.source is None and (self.pkg_name is None or self.name is None):
            raise ValueError("a task is named by pkg_name and name (and version), or by source")
        return self


class WorkflowTaskExport(ReadModel):
    meta_non_parallel: dict[str, Any] | None = None
    meta_parallel: dict[str, Any] | None = None
    args_non_parallel: dict[str, Any] | None = None
    args_parallel: dict[str, Any] | None = None
    type_filters: dict[str, bool] = Field(default_factory=dict)
    alias: str | None = None
    description: str | None = None
    task: dict[str, Any]


class WorkflowExport(ReadModel):
    name: str
    description: str | None = None
    task_list: list[WorkflowTaskExport]


class WorkflowTaskImport(StrictModel):
    meta_non_parallel: JsonDict | None = None
    meta_parallel: JsonDict | None = None
    args_non_parallel: ArgsNonParallel | None = None
    args_parallel: ArgsParallel | None = None
    type_filters: TypeFilters = Field(default_factory=dict)
    input_filters: JsonDict | None = None  # legacy exports; its types become type_filters
    alias: NonEmptyStr | None = None
    description: LongStr | None = None
    task: TaskReference


class WorkflowImport(StrictModel):
    name: NonEmptyStr
    description: LongStr | None = None
    task_list: list[WorkflowTaskImport] = Field(max_length=MAX_WORKFLOW_TASKS)


# Fractal's template schemas ignore unknown fields (no additionalProperties: false), and a
# version is any positive integer a PostgreSQL integer column holds.
TemplateVersion = Annotated[int, Field(gt=0, le=MAX_INT)]


class TemplateCreate(RequestModel):
    name: NonEmptyStr
    version: TemplateVersion
    description: LongStr | None = None


class TemplateImport(RequestModel):
    name: NonEmptyStr
    version: TemplateVersion
    description: LongStr | None = None
    data: WorkflowImport


class TemplateUpdate(RequestModel):
    """Null clears the description and the group."""

    description: LongStr | None = None
    user_group_id: Id | None = None


class TemplateRead(ReadModel):
    id: int
    user_id: int
    user_email: str
    user_group_id: int | None
    name: str
    version: int
    description: str | None
    data: dict[str, Any]
    fractal_server_version: str
    timestamp_created: UTCTimestamp
    timestamp_last_used: UTCTimestamp


class TemplateGroupMember(ReadModel):
    template_id: int
    template_version: int


class TemplateGroup(ReadModel):
    """The versions of one template name of one owner, newest first."""

    user_email: str
    template_name: str
    templates: list[TemplateGroupMember]


class TemplatePage(Page[TemplateGroup]):
    # The owners of every template the user can see (for a filter menu), whatever the page.
    email_list: list[str]


class ImportFromTemplate(StrictModel):
    """`override_versions` maps a task's position in the template to the version to use."""

    name: NonEmptyStr | None = None
    description: LongStr | None = None
    override_versions: dict[Index, NonEmptyStr] = Field(
        default_factory=dict, max_length=MAX_WORKFLOW_TASKS
    )

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # As RequestModel's check, with the positions of override_versions read as JSON keys.
        if isinstance(value, dict):
            check_json({str(key): item for key, item in value.items()})
            return value
        return check_json(value)


class WorkflowTaskReplace(RequestModel):
    """New arguments for a workflow task whose task is replaced; null keeps the old ones."""

    args_non_parallel: ArgsNonParallel | None = None
    args_parallel: ArgsParallel | None = None


class TaskVersionRead(ReadModel):
    task_id: int
    version: str
