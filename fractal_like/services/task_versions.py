"""Moving a workflow's tasks to other versions of their packages.

Which newer versions a workflow task may switch to (`update_candidates`), and switching it
(`replace_task`): same position, type filters and arguments (unless new ones are given),
its meta carried over onto the new task's defaults.
"""

from __future__ import annotations

from typing import Any

from packaging.version import InvalidVersion, Version
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Task, TaskGroup, UserOAuth, WorkflowTask
from ..schemas.workflow import TaskVersionRead, WorkflowTaskReplace
from .errors import InvalidError
from .tasks import usable_task, visible_to
from .workflows import check_parts, check_type_filters

# Besides keeping its type, a workflow task may move to a task that became a converter.
CONVERTER_OF = {"non_parallel": "converter_non_parallel", "compound": "converter_compound"}


def _version(text: str | None) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def _has_args_schema(task: Task) -> bool:
    return bool(task.args_schema_parallel or task.args_schema_non_parallel)


def type_change_allowed(old: str, new: str) -> bool:
    return old == new or CONVERTER_OF.get(old) == new


async def update_candidates(
    session: AsyncSession, user: UserOAuth, rows: list[tuple[WorkflowTask, Task, TaskGroup]]
) -> list[list[TaskVersionRead]]:
    """For each workflow task, the newer versions of its task the user may switch to.

    Only tasks with an arguments schema are offered (the new arguments can then be checked
    against it), of the same package and name, in an active group the user can use, of a
    type the workflow task may take, oldest first. A task without a schema or a readable
    version gets no candidates.
    """
    assert user.id is not None
    answer: list[list[TaskVersionRead]] = []
    for wftask, task, group in rows:
        current = _version(group.version)
        if current is None or not _has_args_schema(task):
            answer.append([])
            continue
        found = await session.exec(
            select(Task, TaskGroup)
            .join(TaskGroup, col(TaskGroup.id) == Task.taskgroupv2_id)
            .where(
                Task.name == task.name,
                TaskGroup.pkg_name == group.pkg_name,
                col(TaskGroup.active).is_(True),
                visible_to(user.id),
            )
        )
        newer = []
        for other, other_group in found.all():
            version = _version(other_group.version)
            if (
                version is not None
                and version > current
                and _has_args_schema(other)
                and type_change_allowed(wftask.task_type, other.type)
            ):
                assert other.id is not None and other_group.version is not None
                newer.append(
                    (version, TaskVersionRead(task_id=other.id, version=other_group.version))
                )
        answer.append([item for _, item in sorted(newer, key=lambda pair: pair[0])])
    return answer


def carried_meta(
    old_task_meta: dict[str, Any] | None,
    wftask_meta: dict[str, Any] | None,
    new_task_meta: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The meta of a workflow task moved from an old task to a new one.

    What the user changed from the old task's defaults (values set or changed, keys
    removed) is applied to the new task's defaults; a workflow task without meta takes the
    new defaults. Empty is None.
    """
    if wftask_meta is None:
        return new_task_meta or None
    old_defaults = old_task_meta or {}
    changed = {key: value for key, value in wftask_meta.items() if old_defaults.get(key) != value}
    dropped = old_defaults.keys() - wftask_meta.keys()
    merged = {**(new_task_meta or {}), **changed}
    return {key: value for key, value in merged.items() if key not in dropped} or None


async def replace_task(
    session: AsyncSession,
    user: UserOAuth,
    wftask: WorkflowTask,
    old_task: Task,
    new_task_id: int,
    replace: WorkflowTaskReplace,
) -> Task:
    """Point `wftask` at task `new_task_id`; return the new task. Not committed."""
    new_task, _group = await usable_task(session, user, new_task_id)
    if not type_change_allowed(wftask.task_type, new_task.type):
        raise InvalidError(
            f"a {wftask.task_type} workflow task cannot become a {new_task.type} one",
        )
    check_parts(new_task.type, replace.model_dump())
    check_type_filters(new_task, wftask.type_filters)
    assert new_task.id is not None
    wftask.task_id = new_task.id
    wftask.task_type = new_task.type
    wftask.meta_non_parallel = carried_meta(
        old_task.meta_non_parallel, wftask.meta_non_parallel, new_task.meta_non_parallel
    )
    wftask.meta_parallel = carried_meta(
        old_task.meta_parallel, wftask.meta_parallel, new_task.meta_parallel
    )
    if replace.args_non_parallel is not None:
        wftask.args_non_parallel = replace.args_non_parallel
    if replace.args_parallel is not None:
        wftask.args_parallel = replace.args_parallel
    return new_task
