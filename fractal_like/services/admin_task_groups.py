"""Every user's task groups, activities and tasks, for superusers: filtered pages, and core tasks.

Reading a group goes through services.tasks (`task_group_reads`), changing its environment
through services.collection.start, as the user routes do: only the filters and the core
flag are the admin's own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, not_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import (
    LinkUserProject,
    Project,
    Task,
    TaskGroup,
    TaskGroupActivity,
    UserGroup,
    UserOAuth,
    Workflow,
    WorkflowTask,
)
from ..schemas.task import ProjectUser, TaskInfo, TaskMinimal, TaskRelationship
from .errors import InvalidError
from .pages import page_of
from .tasks import ActivityFilters


def _in_use() -> ColumnElement[bool]:
    """True for a TaskGroup row one of whose tasks is in a workflow."""
    return exists(
        select(Task.id)
        .join(WorkflowTask, col(WorkflowTask.task_id) == Task.id)
        .where(col(Task.taskgroupv2_id) == TaskGroup.id)
    )


def _private(value: bool | None) -> list[ColumnElement[bool]]:
    # Fractal's "private": a group shared with no user group.
    if value is None:
        return []
    column = col(TaskGroup.user_group_id)
    return [column.is_(None) if value else column.is_not(None)]


# --- Task groups ------------------------------------------------------------------------------


@dataclass
class TaskGroupFilters:
    """The reference's filters of GET /admin/v2/task-group/; None means "any"."""

    task_group_id: int | None = None
    user_id: int | None = None
    user_group_id: int | None = None
    private: bool | None = None
    active: bool | None = None
    pkg_name: str | None = None
    origin: str | None = None
    timestamp_last_used_min: datetime | None = None
    timestamp_last_used_max: datetime | None = None
    resource_id: int | None = None
    in_use: bool | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        if self.user_group_id is not None and self.private:
            raise InvalidError(
                "a private task group has no user group: give user_group_id or private"
            )
        equal = {
            col(TaskGroup.id): self.task_group_id,
            col(TaskGroup.user_id): self.user_id,
            col(TaskGroup.user_group_id): self.user_group_id,
            col(TaskGroup.active): self.active,
            col(TaskGroup.origin): self.origin,
            col(TaskGroup.resource_id): self.resource_id,
        }
        where = [column == value for column, value in equal.items() if value is not None]
        where += _private(self.private)
        if self.pkg_name is not None:
            where.append(col(TaskGroup.pkg_name).icontains(self.pkg_name, autoescape=True))
        if self.timestamp_last_used_min is not None:
            where.append(col(TaskGroup.timestamp_last_used) >= self.timestamp_last_used_min)
        if self.timestamp_last_used_max is not None:
            where.append(col(TaskGroup.timestamp_last_used) <= self.timestamp_last_used_max)
        if self.in_use is not None:
            where.append(_in_use() if self.in_use else not_(_in_use()))
        return where


async def list_task_groups(
    session: AsyncSession, filters: TaskGroupFilters, page: int, page_size: int | None
) -> tuple[int, int, list[TaskGroup]]:
    query = select(TaskGroup).where(*filters.conditions()).order_by(col(TaskGroup.id))
    return await page_of(session, query, page, page_size)


async def list_activities(
    session: AsyncSession, filters: ActivityFilters, page: int, page_size: int | None
) -> tuple[int, int, list[TaskGroupActivity]]:
    """Newest first, as in Fractal."""
    query = (
        select(TaskGroupActivity)
        .where(*filters.conditions())
        .order_by(col(TaskGroupActivity.timestamp_started).desc(), col(TaskGroupActivity.id).desc())
    )
    return await page_of(session, query, page, page_size)


# --- Core tasks -------------------------------------------------------------------------------


async def _check_no_other_core(session: AsyncSession, tasks: list[Task]) -> None:
    """Fractal's rule: one core task per name, package, version and resource."""
    for task in tasks:
        group = await session.get(TaskGroup, task.taskgroupv2_id)
        assert group is not None
        same_version = (
            col(TaskGroup.version).is_(None)
            if group.version is None
            else col(TaskGroup.version) == group.version
        )
        same_resource = (
            col(TaskGroup.resource_id).is_(None)
            if group.resource_id is None
            else col(TaskGroup.resource_id) == group.resource_id
        )
        clash = (
            await session.exec(
                select(Task.id)
                .join(TaskGroup, col(TaskGroup.id) == Task.taskgroupv2_id)
                .where(
                    col(Task.name) == task.name,
                    col(Task.id) != task.id,
                    col(Task.is_core).is_(True),
                    col(TaskGroup.pkg_name) == group.pkg_name,
                    same_version,
                    same_resource,
                )
            )
        ).first()
        if clash is not None:
            raise InvalidError(
                f"task {clash} is already the core task named {task.name!r} of "
                f"{group.pkg_name} {group.version}: make it not core first",
            )


async def set_core(session: AsyncSession, tasks: list[Task], is_core: bool) -> None:
    """Mark the tasks core (or not) and commit; 422 if that would make two core twins."""
    if is_core:
        await _check_no_other_core(session, [task for task in tasks if not task.is_core])
    ids = [task.id for task in tasks if task.id is not None]
    if ids:
        await session.exec(update(Task).where(col(Task.id).in_(ids)).values(is_core=is_core))
    await session.commit()
    for task in tasks:
        await session.refresh(task)


async def tasks_of_group(session: AsyncSession, group_id: int) -> list[Task]:
    return list(
        (
            await session.exec(
                select(Task).where(Task.taskgroupv2_id == group_id).order_by(col(Task.id))
            )
        ).all()
    )


# --- Tasks ------------------------------------------------------------------------------------


@dataclass
class TaskFilters:
    """The reference's filters of GET /admin/v2/task/; None means "any"."""

    id: int | None = None
    version: str | None = None
    name: str | None = None
    task_type: str | None = None
    category: str | None = None
    modality: str | None = None
    author: str | None = None
    resource_id: int | None = None
    owner_id: int | None = None
    task_group: str | None = None  # part of the package name
    core: bool | None = None
    private: bool | None = None
    active: bool | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        equal = {
            col(Task.id): self.id,
            col(Task.version): self.version,
            col(Task.type): self.task_type,
            col(Task.is_core): self.core,
            col(TaskGroup.resource_id): self.resource_id,
            col(TaskGroup.user_id): self.owner_id,
            col(TaskGroup.active): self.active,
        }
        where = [column == value for column, value in equal.items() if value is not None]
        where += _private(self.private)
        contains = {
            col(Task.name): self.name,
            col(Task.authors): self.author,
            col(TaskGroup.pkg_name): self.task_group,
        }
        where += [
            column.icontains(value, autoescape=True)
            for column, value in contains.items()
            if value is not None
        ]
        for column, value in (
            (col(Task.category), self.category),
            (col(Task.modality), self.modality),
        ):
            if value is not None:
                where.append(func.lower(column) == value.lower())
        return where


async def list_tasks(
    session: AsyncSession, filters: TaskFilters, page: int, page_size: int | None
) -> tuple[int, int, list[TaskInfo]]:
    """A page of tasks, each with its group's facts and the workflows that use it."""
    query = (
        select(Task, TaskGroup, UserOAuth.email, UserGroup.name)
        .join(TaskGroup, col(TaskGroup.id) == Task.taskgroupv2_id)
        .join(UserOAuth, col(UserOAuth.id) == TaskGroup.user_id)
        .outerjoin(UserGroup, col(UserGroup.id) == TaskGroup.user_group_id)
        .where(*filters.conditions())
        .order_by(col(Task.id))
    )
    total, size, rows = await page_of(session, query, page, page_size)
    uses = await _relationships(session, [task.id for task, *_rest in rows])
    items = [
        TaskInfo(
            task=TaskMinimal(
                **task.model_dump(include=set(TaskMinimal.model_fields) - {"pkg_name", "active"}),
                pkg_name=group.pkg_name,
                active=group.active,
                owner=email,
                user_group=user_group,
            ),
            relationships=uses.get(task.id, []),
        )
        for task, group, email, user_group in rows
    ]
    return total, size, items


async def _relationships(
    session: AsyncSession, task_ids: list[int]
) -> dict[int, list[TaskRelationship]]:
    """For each task, the workflows using it, with their project and its owners."""
    if not task_ids:
        return {}
    rows = (
        await session.exec(
            select(WorkflowTask.task_id, Workflow.id, Workflow.name, Project.id, Project.name)  # type: ignore[call-overload]  # sqlmodel types select() for 4 columns at most
            .join(Workflow, col(Workflow.id) == WorkflowTask.workflow_id)
            .join(Project, col(Project.id) == Workflow.project_id)
            .where(col(WorkflowTask.task_id).in_(task_ids))
            .distinct()
            .order_by(col(Workflow.id))
        )
    ).all()
    project_ids = {project_id for *_first, project_id, _name in rows}
    owners: dict[int, list[ProjectUser]] = defaultdict(list)
    if project_ids:
        for project_id, user_id, email in (
            await session.exec(
                select(LinkUserProject.project_id, UserOAuth.id, UserOAuth.email)
                .join(UserOAuth, col(UserOAuth.id) == LinkUserProject.user_id)
                .where(
                    col(LinkUserProject.project_id).in_(project_ids),
                    col(LinkUserProject.is_owner).is_(True),
                )
                .order_by(col(UserOAuth.id))
            )
        ).all():
            owners[project_id].append(ProjectUser(id=user_id, email=email))
    found: dict[int, list[TaskRelationship]] = defaultdict(list)
    for task_id, workflow_id, workflow_name, project_id, project_name in rows:
        found[task_id].append(
            TaskRelationship(
                workflow_id=workflow_id,
                workflow_name=workflow_name,
                project_id=project_id,
                project_name=project_name,
                project_users=owners.get(project_id, []),
            )
        )
    return found
