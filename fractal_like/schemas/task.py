"""Tasks, task groups, their collection activities and the Fractal task manifest (v2)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from ..task_command import MAX_COMMAND_LENGTH, check_command
from ._base import (
    Id,
    JsonDict,
    NonEmptyStr,
    PathStr,
    ReadModel,
    RequestModel,
    StrictModel,
    TypeFilters,
    UTCTimestamp,
    omittable,
)

PythonVersion = Literal["3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"]
TaskType = Literal[
    "non_parallel", "parallel", "compound", "converter_non_parallel", "converter_compound"
]

# Which commands (non-parallel, parallel) each task type has.
COMMANDS_OF_TYPE: dict[str, tuple[bool, bool]] = {
    "non_parallel": (True, False),
    "parallel": (False, True),
    "compound": (True, True),
    "converter_non_parallel": (True, False),
    "converter_compound": (True, True),
}

MAX_TAGS = 100
MAX_MANIFEST_TASKS = 1000

# Checked as the runner will split it (task_command), so a saved command always runs.
Command = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_COMMAND_LENGTH),
    AfterValidator(check_command),
]
DocsInfo = Annotated[str, StringConstraints(max_length=65536)]
DocsLink = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
Authors = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024)]
SchemaVersion = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)
]
Tags = Annotated[list[NonEmptyStr], Field(max_length=MAX_TAGS)]


def resolve_task_type(
    declared: str | None,
    *,
    non_parallel: bool,
    parallel: bool,
    what: str = "command",
) -> str:
    """The task type, inferred from which commands exist when not given; ValueError on conflict."""
    if not non_parallel and not parallel:
        raise ValueError(f"a task needs {what}_non_parallel, {what}_parallel or both")
    if declared is None:
        if non_parallel and parallel:
            return "compound"
        return "non_parallel" if non_parallel else "parallel"
    needs_non_parallel, needs_parallel = COMMANDS_OF_TYPE[declared]
    if (needs_non_parallel, needs_parallel) != (non_parallel, parallel):
        wanted = " and ".join(
            name
            for name, needed in (
                (f"{what}_non_parallel", needs_non_parallel),
                (f"{what}_parallel", needs_parallel),
            )
            if needed
        )
        raise ValueError(f"a task of type {declared!r} needs exactly {wanted}")
    return declared


def check_unused_parts(
    *,
    non_parallel: bool,
    parallel: bool,
    meta_non_parallel: dict[str, Any],
    meta_parallel: dict[str, Any],
    args_schema_non_parallel: dict[str, Any] | None,
    args_schema_parallel: dict[str, Any] | None,
) -> None:
    """Meta and argument schemas only for the steps the task has."""
    for step, present, meta, schema in (
        ("non_parallel", non_parallel, meta_non_parallel, args_schema_non_parallel),
        ("parallel", parallel, meta_parallel, args_schema_parallel),
    ):
        if not present and (meta or schema is not None):
            raise ValueError(
                f"the task has no {step} step: meta_{step} and args_schema_{step} must be empty"
            )


class TaskCreate(StrictModel):
    name: NonEmptyStr
    type: TaskType | None = None
    version: NonEmptyStr | None = None
    command_non_parallel: Command | None = None
    command_parallel: Command | None = None
    meta_non_parallel: JsonDict = Field(default_factory=dict)
    meta_parallel: JsonDict = Field(default_factory=dict)
    args_schema_non_parallel: JsonDict | None = None
    args_schema_parallel: JsonDict | None = None
    args_schema_version: SchemaVersion | None = None
    input_types: TypeFilters = Field(default_factory=dict)
    output_types: TypeFilters = Field(default_factory=dict)
    category: NonEmptyStr | None = None
    modality: NonEmptyStr | None = None
    tags: Tags = Field(default_factory=list)
    authors: Authors | None = None
    docs_info: DocsInfo | None = None
    docs_link: DocsLink | None = None

    @model_validator(mode="after")
    def _consistent_type(self) -> TaskCreate:
        non_parallel = self.command_non_parallel is not None
        parallel = self.command_parallel is not None
        # resolve_task_type returns the same literals as a plain str.
        self.type = resolve_task_type(  # type: ignore[assignment]
            self.type, non_parallel=non_parallel, parallel=parallel
        )
        check_unused_parts(
            non_parallel=non_parallel,
            parallel=parallel,
            meta_non_parallel=self.meta_non_parallel,
            meta_parallel=self.meta_parallel,
            args_schema_non_parallel=self.args_schema_non_parallel,
            args_schema_parallel=self.args_schema_parallel,
        )
        return self


class TaskUpdate(StrictModel):
    """Commands, name and types cannot be null; category, modality and authors are cleared
    by null, and so are tags (null means no tags, as the column is a list)."""

    name: NonEmptyStr = omittable()
    command_non_parallel: Command = omittable()
    command_parallel: Command = omittable()
    input_types: TypeFilters = omittable()
    output_types: TypeFilters = omittable()
    category: NonEmptyStr | None = None
    modality: NonEmptyStr | None = None
    authors: Authors | None = None
    tags: Tags | None = None

    @field_validator("tags", mode="after")
    @classmethod
    def _null_tags_are_none(cls, value: list[str] | None) -> list[str]:
        return [] if value is None else value


class TaskRead(ReadModel):
    id: int
    name: str
    type: str
    version: str | None = None
    is_core: bool = False
    command_non_parallel: str | None = None
    command_parallel: str | None = None
    meta_non_parallel: dict[str, Any] = Field(default_factory=dict)
    meta_parallel: dict[str, Any] = Field(default_factory=dict)
    args_schema_non_parallel: dict[str, Any] | None = None
    args_schema_parallel: dict[str, Any] | None = None
    args_schema_version: str | None = None
    docs_info: str | None = None
    docs_link: str | None = None
    input_types: dict[str, bool] = Field(default_factory=dict)
    output_types: dict[str, bool] = Field(default_factory=dict)
    taskgroupv2_id: int
    category: str | None = None
    modality: str | None = None
    authors: str | None = None
    tags: list[str] = Field(default_factory=list)


class TaskReadSlim(ReadModel):
    """One item of GET /api/v2/task/: enough to choose a task, without commands or schemas."""

    id: int
    name: str
    type: str
    version: str | None = None
    is_core: bool = False
    taskgroupv2_id: int
    category: str | None = None
    modality: str | None = None
    authors: str | None = None
    tags: list[str] = Field(default_factory=list)
    input_types: dict[str, bool] = Field(default_factory=dict)
    docs_info: str | None = None
    docs_link: str | None = None


class _TaskGroupFields(ReadModel):
    """What every read of a task group shows, besides its tasks."""

    id: int
    user_id: int
    user_email: str
    user_group_id: int | None = None
    origin: str
    pkg_name: str
    version: str | None = None
    python_version: str | None = None
    pixi_version: str | None = None
    path: str | None = None
    venv_path: str | None = None
    wheel_path: str | None = None
    archive_path: str | None = None
    pip_extras: str | None = None
    # Our column `pinned_package_versions` holds the pins installed after the package; it
    # is shown under both names (the second is Fractal's current one).
    pinned_package_versions: dict[str, str] = Field(default_factory=dict)
    pinned_package_versions_pre: dict[str, str] = Field(default_factory=dict)
    pinned_package_versions_post: dict[str, str] = Field(default_factory=dict)
    pip_freeze: str | None = None
    in_use: bool  # one of its tasks is in a workflow
    active: bool
    timestamp_created: UTCTimestamp
    timestamp_last_used: UTCTimestamp


class TaskGroupRead(_TaskGroupFields):
    task_list: list[TaskRead]


class TaskGroupReadSlim(_TaskGroupFields):
    """One group of GET /api/v2/task-group/: its tasks without commands or schemas."""

    task_list: list[TaskReadSlim]


class TaskGroupReadSuperuser(TaskGroupRead):
    resource_id: int | None = None


class TaskGroupUpdate(StrictModel):
    user_group_id: Id | None = None


class TaskGroupOverridesPip(StrictModel):
    """An admin's changes to a task group before its environment is rebuilt (reset/pip).

    As in Fractal, the pins are JSON text (e.g. '{"numpy": "1.26.4"}') and replace the
    group's pins; extras and Python version replace the group's only when given. Their
    content is checked by the same rules as the collection form's.
    """

    pip_extras: Annotated[str, StringConstraints(max_length=300)] | None = None
    python_version: PythonVersion | None = None
    pinned_package_versions_pre: Annotated[str, StringConstraints(max_length=20_000)] = "{}"
    pinned_package_versions_post: Annotated[str, StringConstraints(max_length=20_000)] = "{}"


class TaskGroupOverridesPixi(StrictModel):
    use_pixi_lockfile: bool = False


class TaskGroupActivityRead(ReadModel):
    id: int
    user_id: int
    taskgroupv2_id: int | None = None
    timestamp_started: UTCTimestamp
    timestamp_ended: UTCTimestamp | None = None
    pkg_name: str
    version: str | None = None
    status: str
    action: str
    log: str | None = None


# --- The task manifest (`__FRACTAL_MANIFEST__.json`, manifest_version "2") ---------------------


def _relative_executable(value: str) -> str:
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError("an executable must be a path relative to the package root, without '..'")
    return value


Executable = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=1024),
    AfterValidator(_relative_executable),
]


class ManifestTask(RequestModel):
    """One task of a manifest. Unknown keys are ignored, as newer manifests may add some."""

    name: NonEmptyStr
    type: TaskType | None = None
    executable_non_parallel: Executable | None = None
    executable_parallel: Executable | None = None
    input_types: TypeFilters = Field(default_factory=dict)
    output_types: TypeFilters = Field(default_factory=dict)
    meta_non_parallel: JsonDict = Field(default_factory=dict)
    meta_parallel: JsonDict = Field(default_factory=dict)
    args_schema_non_parallel: JsonDict | None = None
    args_schema_parallel: JsonDict | None = None
    docs_info: DocsInfo | None = None
    docs_link: DocsLink | None = None
    category: NonEmptyStr | None = None
    modality: NonEmptyStr | None = None
    tags: Tags = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent_type(self) -> ManifestTask:
        non_parallel = self.executable_non_parallel is not None
        parallel = self.executable_parallel is not None
        # resolve_task_type returns the same literals as a plain str.
        self.type = resolve_task_type(  # type: ignore[assignment]
            self.type, non_parallel=non_parallel, parallel=parallel, what="executable"
        )
        check_unused_parts(
            non_parallel=non_parallel,
            parallel=parallel,
            meta_non_parallel=self.meta_non_parallel,
            meta_parallel=self.meta_parallel,
            args_schema_non_parallel=self.args_schema_non_parallel,
            args_schema_parallel=self.args_schema_parallel,
        )
        return self


class Manifest(RequestModel):
    manifest_version: Literal["2"]
    task_list: Annotated[list[ManifestTask], Field(max_length=MAX_MANIFEST_TASKS)]
    has_args_schemas: bool = False
    args_schema_version: SchemaVersion | None = None
    authors: Authors | None = None

    @model_validator(mode="after")
    def _unique_names_and_schemas(self) -> Manifest:
        names = [task.name for task in self.task_list]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"task names must be unique in a manifest; repeated: {repeated}")
        if self.has_args_schemas:
            for task in self.task_list:
                for step in ("non_parallel", "parallel"):
                    if (
                        getattr(task, f"executable_{step}") is not None
                        and getattr(task, f"args_schema_{step}") is None
                    ):
                        raise ValueError(
                            f"has_args_schemas is true but task {task.name!r} "
                            f"has no args_schema_{step}"
                        )
        return self


def _absolute(value: str) -> str:
    if not PurePosixPath(value).is_absolute():
        raise ValueError("must be an absolute path")
    return value


AbsolutePath = Annotated[PathStr, AfterValidator(_absolute)]
PackageName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$",
    ),
]


class TaskCollectCustom(StrictModel):
    label: NonEmptyStr
    python_interpreter: AbsolutePath
    manifest: Manifest
    version: NonEmptyStr | None = None
    package_name: PackageName | None = None
    package_root: AbsolutePath | None = None

    @model_validator(mode="after")
    def _one_location(self) -> TaskCollectCustom:
        if (self.package_name is None) == (self.package_root is None):
            raise ValueError("give exactly one of package_name and package_root")
        return self


# The body of the make-core / make-not-core admin routes: a bare JSON list of task ids.
TaskIdList = Annotated[list[Id], Field(min_length=1, max_length=10_000)]


# --- Admin views of tasks (GET /admin/v2/task/) -----------------------------------------------


class TaskMinimal(ReadModel):
    id: int
    name: str
    type: str
    is_core: bool
    taskgroupv2_id: int
    command_non_parallel: str | None = None
    command_parallel: str | None = None
    version: str | None = None
    pkg_name: str
    active: bool
    owner: str  # the email of the task group's owner
    user_group: str | None = None  # the name of the user group it is shared with


class ProjectUser(ReadModel):
    id: int
    email: str


class TaskRelationship(ReadModel):
    """A workflow using the task, its project and the project's owners."""

    workflow_id: int
    workflow_name: str
    project_id: int
    project_name: str
    project_users: list[ProjectUser] = Field(default_factory=list)


class TaskInfo(ReadModel):
    task: TaskMinimal
    relationships: list[TaskRelationship]
