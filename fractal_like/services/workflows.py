"""Workflows: reading them with their tasks, adding, reordering, exporting and importing."""

from __future__ import annotations

import re
from typing import Any

from packaging.version import InvalidVersion, Version
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import (
    LinkUserProject,
    Project,
    Task,
    TaskGroup,
    UserGroup,
    UserOAuth,
    Workflow,
    WorkflowTask,
)
from ..schemas.task import TaskRead
from ..schemas.workflow import (
    WorkflowExport,
    WorkflowImport,
    WorkflowRead,
    WorkflowTaskCreate,
    WorkflowTaskExport,
    WorkflowTaskImport,
    WorkflowTaskRead,
)
from .errors import InvalidError
from .projects import project_read
from .tasks import usable_task, visible_to


class ImportMatchError(Exception):
    """Some tasks of an imported workflow are not available; `data` says which."""

    def __init__(self, data: list[dict[str, Any]]) -> None:
        super().__init__("[HAS_ERROR_DATA]")
        self.data = data


async def workflow_tasks(
    session: AsyncSession, workflow_id: int
) -> list[tuple[WorkflowTask, Task, TaskGroup]]:
    rows = await session.exec(
        select(WorkflowTask, Task, TaskGroup)
        .join(Task, col(Task.id) == WorkflowTask.task_id)
        .join(TaskGroup, col(TaskGroup.id) == Task.taskgroupv2_id)
        .where(WorkflowTask.workflow_id == workflow_id)
        .order_by(col(WorkflowTask.order))
    )
    return list(rows.all())


def wftask_read(
    wftask: WorkflowTask, task: Task, group: TaskGroup | None = None
) -> WorkflowTaskRead:
    data = WorkflowTaskRead.model_validate(
        {**wftask.model_dump(), "task": TaskRead.model_validate(task)}
    )
    if group is not None and not group.active:
        data.warning = f"task group {group.pkg_name} {group.version or ''} is not active".strip()
    return data


async def workflow_read(
    session: AsyncSession, workflow: Workflow, project: Project, link: LinkUserProject | None
) -> WorkflowRead:
    assert workflow.id is not None
    tasks = await workflow_tasks(session, workflow.id)
    return WorkflowRead(
        id=workflow.id,
        name=workflow.name,
        project_id=workflow.project_id,
        is_starred=workflow.is_starred,
        task_list=[wftask_read(wftask, task, group) for wftask, task, group in tasks],
        project=project_read(project, link),
        timestamp_created=workflow.timestamp_created,
        description=workflow.description,
        template_id=workflow.template_id,
    )


def check_type_filters(task: Task, type_filters: dict[str, bool]) -> None:
    """A workflow task cannot filter for the opposite of what its task requires."""
    clash = sorted(
        key
        for key, value in type_filters.items()
        if key in task.input_types and task.input_types[key] != value
    )
    if clash:
        raise InvalidError(
            f"type_filters {clash} contradict the input_types of task {task.name!r}",
        )


def type_filters_flow(rows: list[tuple[WorkflowTask, Task, TaskGroup]]) -> list[dict[str, Any]]:
    """Per workflow task: the types earlier tasks set (`current_type_filters`), the filters
    it selects its images with (task's input types and its own filters), and the types it
    sets (`output_type_filters`)."""
    flow = []
    current: dict[str, bool] = {}
    for wftask, task, _group in rows:
        check_type_filters(task, wftask.type_filters)  # a task's types may have changed since
        flow.append(
            {
                "workflowtask_id": wftask.id,
                "current_type_filters": dict(current),
                "input_type_filters": {**task.input_types, **wftask.type_filters},
                "output_type_filters": dict(task.output_types),
            }
        )
        current.update(task.output_types)
    return flow


NON_PARALLEL_KINDS = ("non_parallel", "converter_non_parallel")


def check_parts(task_type: str, fields: dict[str, Any]) -> None:
    """Arguments and meta only for the parts a task type has (a compound task has both)."""
    if task_type == "parallel":
        wrong = ("args_non_parallel", "meta_non_parallel")
    elif task_type in NON_PARALLEL_KINDS:
        wrong = ("args_parallel", "meta_parallel")
    else:
        return
    given = sorted(key for key in wrong if fields.get(key) is not None)
    if given:
        raise InvalidError(f"a {task_type} task takes no {' or '.join(given)}")


async def project_workflows(session: AsyncSession, project_id: int) -> list[Workflow]:
    query = select(Workflow).where(Workflow.project_id == project_id).order_by(col(Workflow.id))
    return list((await session.exec(query)).all())


async def check_name_free(
    session: AsyncSession, project_id: int, name: str, exclude: int | None = None
) -> None:
    """422 when another workflow of the project has that name (`exclude`: the one renamed)."""
    query = (
        select(func.count())
        .select_from(Workflow)
        .where(Workflow.project_id == project_id, Workflow.name == name)
    )
    if exclude is not None:
        query = query.where(Workflow.id != exclude)
    if (await session.exec(query)).one():
        raise InvalidError(f"project {project_id} already has a workflow named {name!r}")


async def task_of(session: AsyncSession, wftask: WorkflowTask) -> tuple[Task, TaskGroup]:
    """The task of a workflow task, and its task group (the foreign keys keep both)."""
    task = await session.get(Task, wftask.task_id)
    assert task is not None
    group = await session.get(TaskGroup, task.taskgroupv2_id)
    assert group is not None
    return task, group


def update_wftask(wftask: WorkflowTask, task: Task, changes: dict[str, Any]) -> None:
    """Apply a PATCH of a workflow task: only the arguments its task type takes."""
    if changes.get("type_filters") is not None:
        check_type_filters(task, changes["type_filters"])
    check_parts(wftask.task_type, changes)
    for key, value in changes.items():
        if key == "type_filters" and value is None:
            value = {}
        elif key in ("args_parallel", "args_non_parallel") and not value:
            value = None  # no arguments, whether sent as {} or null
        setattr(wftask, key, value)


def meta_with_defaults(
    task_meta: dict[str, Any] | None, given: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A new workflow task's meta: the task's own meta under the one given (None if empty).

    As Fractal does, the task's defaults are copied in when the workflow task is made, so a
    later change of the task does not change workflows already built with it.
    """
    merged = {**(task_meta or {}), **(given or {})}
    return merged or None


def new_wftask(workflow_id: int, task: Task, order: int, fields: dict[str, Any]) -> WorkflowTask:
    """A workflow task of `task` from the fields of a create or import request."""
    assert task.id is not None
    return WorkflowTask(
        workflow_id=workflow_id,
        task_id=task.id,
        order=order,
        task_type=task.type,
        **{
            **fields,
            "meta_non_parallel": meta_with_defaults(
                task.meta_non_parallel, fields.get("meta_non_parallel")
            ),
            "meta_parallel": meta_with_defaults(task.meta_parallel, fields.get("meta_parallel")),
        },
    )


async def add_tasks(
    session: AsyncSession,
    user: UserOAuth,
    workflow: Workflow,
    items: list[WorkflowTaskCreate],
    order: int | None = None,
) -> list[tuple[WorkflowTask, Task]]:
    """Insert the tasks at position `order` (default: the end), in the order given."""
    assert workflow.id is not None
    existing = [wftask for wftask, _, _ in await workflow_tasks(session, workflow.id)]
    start = len(existing) if order is None else min(order, len(existing))
    created = []
    for item in items:
        task, _group = await usable_task(session, user, item.task_id)
        check_type_filters(task, item.type_filters)
        check_parts(task.type, item.model_dump())
        created.append(
            (new_wftask(workflow.id, task, 0, item.model_dump(exclude={"task_id"})), task)
        )
    ordered = existing[:start] + [wftask for wftask, _ in created] + existing[start:]
    for position, wftask in enumerate(ordered):
        wftask.order = position
        session.add(wftask)
    await session.flush()
    return created


async def reorder(session: AsyncSession, workflow_id: int, ordered_ids: list[int]) -> None:
    rows = await workflow_tasks(session, workflow_id)
    current = {wftask.id: wftask for wftask, _, _ in rows if wftask.id is not None}
    if len(ordered_ids) != len(set(ordered_ids)) or set(ordered_ids) != set(current):
        raise InvalidError(
            "reordered_workflowtask_ids must list every task of the workflow exactly "
            f"once: it has {sorted(current)}",
        )
    for position, wftask_id in enumerate(ordered_ids):
        current[wftask_id].order = position


async def renumber(session: AsyncSession, workflow_id: int) -> None:
    for position, (wftask, _, _) in enumerate(await workflow_tasks(session, workflow_id)):
        wftask.order = position


async def export(session: AsyncSession, workflow: Workflow) -> WorkflowExport:
    assert workflow.id is not None
    task_list = []
    for wftask, task, group in await workflow_tasks(session, workflow.id):
        task_list.append(
            WorkflowTaskExport(
                meta_non_parallel=wftask.meta_non_parallel,
                meta_parallel=wftask.meta_parallel,
                args_non_parallel=wftask.args_non_parallel,
                args_parallel=wftask.args_parallel,
                type_filters=wftask.type_filters,
                alias=wftask.alias,
                description=wftask.description,
                task={"pkg_name": group.pkg_name, "version": group.version, "name": task.name},
            )
        )
    return WorkflowExport(name=workflow.name, description=workflow.description, task_list=task_list)


def normalise_pkg_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version_key(version: str | None) -> tuple[int, Any]:
    try:
        return (1, Version(version or ""))
    except InvalidVersion:
        return (0, version or "")


class TaskMatcher:
    """Fractal's rules for finding the task an exported workflow names.

    Among the active task groups the user can use with that package name: the exact
    version if one is given (else the latest); among several groups of that version,
    the user's own first, then the default group's, then the oldest.
    """

    def __init__(
        self,
        user: UserOAuth,
        groups: list[TaskGroup],
        tasks: list[Task],
        default_group_id: int | None,
    ) -> None:
        self.user = user
        self.groups = groups
        self.tasks_by_group: dict[int, list[Task]] = {}
        for task in tasks:
            self.tasks_by_group.setdefault(task.taskgroupv2_id, []).append(task)
        self.default_group_id = default_group_id

    def _priority(self, group: TaskGroup) -> tuple[int, int]:
        if group.user_id == self.user.id:
            rank = 0
        elif group.user_group_id == self.default_group_id:
            rank = 2
        else:
            rank = 1
        return (rank, group.id or 0)

    def _available(self, pkg: str, name: str) -> list[dict[str, Any]]:
        found = []
        for group in self.groups:
            if normalise_pkg_name(group.pkg_name) != pkg:
                continue
            for task in self.tasks_by_group.get(group.id or 0, []):
                if task.name == name:
                    found.append(
                        {
                            "task_id": task.id,
                            "version": group.version,
                            "active": group.active,
                            "pkg_name": group.pkg_name,
                            "task_name": task.name,
                        }
                    )
        return found

    def match(self, item: WorkflowTaskImport) -> tuple[Task | None, dict[str, Any]]:
        ref = item.task
        if ref.pkg_name is None or ref.name is None:
            for group in self.groups:
                for task in self.tasks_by_group.get(group.id or 0, []):
                    if group.active and task.source == ref.source:
                        return task, {
                            "outcome": "success",
                            "task_id": task.id,
                            "source": ref.source,
                            "task_name": task.name,
                            "pkg_name": group.pkg_name,
                            "version": group.version,
                        }
            return None, {
                "outcome": "fail",
                "source": ref.source,
                "task_name": None,
                "pkg_name": None,
                "version": None,
                "available_tasks": [],
            }
        pkg = normalise_pkg_name(ref.pkg_name)
        report: dict[str, Any] = {
            "task_name": ref.name,
            "pkg_name": ref.pkg_name,
            "version": ref.version,
        }
        candidates = [
            group
            for group in self.groups
            if group.active
            and normalise_pkg_name(group.pkg_name) == pkg
            and any(task.name == ref.name for task in self.tasks_by_group.get(group.id or 0, []))
        ]
        if ref.version is not None:
            candidates = [group for group in candidates if group.version == ref.version]
        elif candidates:
            latest = max(_version_key(group.version) for group in candidates)
            candidates = [group for group in candidates if _version_key(group.version) == latest]
        if not candidates:
            return None, {
                **report,
                "outcome": "fail",
                "available_tasks": self._available(pkg, ref.name),
            }
        group = min(candidates, key=self._priority)
        task = next(task for task in self.tasks_by_group[group.id or 0] if task.name == ref.name)
        return task, {**report, "outcome": "success", "task_id": task.id, "version": group.version}


async def import_workflow(
    session: AsyncSession,
    user: UserOAuth,
    project_id: int,
    payload: WorkflowImport,
    default_group_name: str,
) -> Workflow:
    assert user.id is not None
    groups = list((await session.exec(select(TaskGroup).where(visible_to(user.id)))).all())
    group_ids = [group.id for group in groups]
    tasks = (
        list(
            (await session.exec(select(Task).where(col(Task.taskgroupv2_id).in_(group_ids)))).all()
        )
        if group_ids
        else []
    )
    default_group = (
        await session.exec(select(UserGroup).where(UserGroup.name == default_group_name))
    ).first()
    matcher = TaskMatcher(user, groups, tasks, default_group.id if default_group else None)
    matched = [matcher.match(item) for item in payload.task_list]
    if any(task is None for task, _ in matched):
        raise ImportMatchError([report for _, report in matched])
    workflow = Workflow(project_id=project_id, name=payload.name, description=payload.description)
    session.add(workflow)
    await session.flush()
    assert workflow.id is not None
    for order, (item, (task, _)) in enumerate(zip(payload.task_list, matched, strict=True)):
        assert task is not None
        type_filters = dict(item.type_filters)
        if item.input_filters and not type_filters:
            type_filters = dict(item.input_filters.get("types") or {})
        check_type_filters(task, type_filters)
        fields = item.model_dump(exclude={"task", "input_filters", "type_filters"})
        session.add(new_wftask(workflow.id, task, order, {**fields, "type_filters": type_filters}))
    await session.flush()
    return workflow
