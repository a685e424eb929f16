"""Tasks and task groups: who may see or change them, creating them, and custom collection.

A task group is visible to its owner and to the members of the user group it is shared with;
only its owner (or a superuser) changes or deletes it. Every route reaches tasks and task
groups through `task_group_for` / `task_for`, so these rules live here only.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
import subprocess
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from packaging.version import InvalidVersion, Version
from sqlalchemy import ColumnElement, or_
from sqlmodel import col, delete, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import (
    LinkUserGroup,
    Profile,
    Task,
    TaskGroup,
    TaskGroupActivity,
    UserGroup,
    UserOAuth,
    WorkflowTask,
)
from ..schemas.task import (
    COMMANDS_OF_TYPE,
    Manifest,
    TaskGroupRead,
    TaskGroupReadSlim,
    TaskGroupReadSuperuser,
    TaskGroupUpdate,
)
from ..task_command import CommandError, check_command
from .access import get_or_404
from .errors import ForbiddenError, InvalidError, NotFoundError

ORIGIN_OTHER = "other"
FIND_PACKAGE_TIMEOUT_SECONDS = 30

# Run by the user's interpreter with `-I` (isolated: no PYTHONPATH, no current folder on
# sys.path), the package name as its only argument. It prints the package's folder.
_FIND_PACKAGE_SCRIPT = """\
import importlib.util, sys
try:
    spec = importlib.util.find_spec(sys.argv[1])
except Exception as error:
    sys.exit(f"cannot import {sys.argv[1]}: {error}")
if spec is None:
    sys.exit(f"no module named {sys.argv[1]}")
if not spec.submodule_search_locations:
    sys.exit(f"{sys.argv[1]} is a module, not a package")
print(list(spec.submodule_search_locations)[0])
"""


# --- Visibility and ownership ------------------------------------------------------------------


def _member_of(user_id: int) -> Any:
    return select(LinkUserGroup.group_id).where(LinkUserGroup.user_id == user_id)


def visible_to(user_id: int) -> ColumnElement[bool]:
    """The condition on TaskGroup for the groups a user may see and use."""
    return or_(
        col(TaskGroup.user_id) == user_id,
        col(TaskGroup.user_group_id).in_(_member_of(user_id)),
    )


async def is_member(session: AsyncSession, user_id: int, group_id: int) -> bool:
    return await session.get(LinkUserGroup, (group_id, user_id)) is not None


async def _can_see(session: AsyncSession, user: UserOAuth, group: TaskGroup) -> bool:
    assert user.id is not None
    if user.is_superuser or group.user_id == user.id:
        return True
    return group.user_group_id is not None and await is_member(
        session, user.id, group.user_group_id
    )


async def task_group_for(
    session: AsyncSession, user: UserOAuth, group_id: int, *, manage: bool = False
) -> TaskGroup:
    """The task group; 404 if missing, 403 if the user may not see it (or, to manage, own it)."""
    group = await get_or_404(session, TaskGroup, group_id, "task group")
    if not await _can_see(session, user, group):
        raise ForbiddenError(f"you have no access to task group {group_id}")
    if manage and group.user_id != user.id and not user.is_superuser:
        raise ForbiddenError(f"only the owner of task group {group_id} can change it")
    return group


async def task_for(
    session: AsyncSession, user: UserOAuth, task_id: int, *, manage: bool = False
) -> tuple[Task, TaskGroup]:
    """The task and its group, with the same rules as `task_group_for`."""
    task = await get_or_404(session, Task, task_id, "task")
    group = await session.get(TaskGroup, task.taskgroupv2_id)
    assert group is not None
    if not await _can_see(session, user, group):
        raise ForbiddenError(f"you have no access to task {task_id}")
    if manage and group.user_id != user.id and not user.is_superuser:
        raise ForbiddenError(f"only the owner of task group {group.id} can change task {task_id}")
    return task, group


async def target_user_group(
    session: AsyncSession,
    user: UserOAuth,
    *,
    private: bool,
    user_group_id: int | None,
    default_group_name: str,
) -> int | None:
    """The user group a new task group is shared with (None: private to its owner)."""
    assert user.id is not None
    if private:
        if user_group_id is not None:
            raise InvalidError("a private task group cannot have a user_group_id")
        return None
    if user_group_id is None:
        default = (
            await session.exec(select(UserGroup.id).where(UserGroup.name == default_group_name))
        ).first()
        return default
    await check_can_share_with(session, user, user_group_id)
    return user_group_id


async def check_can_share_with(session: AsyncSession, user: UserOAuth, user_group_id: int) -> None:
    assert user.id is not None
    await get_or_404(session, UserGroup, user_group_id, "group")
    if not user.is_superuser and not await is_member(session, user.id, user_group_id):
        raise ForbiddenError(f"you are not a member of group {user_group_id}")


def _same_package(pkg_name: str, version: str | None) -> list[ColumnElement[bool]]:
    same_version = (
        col(TaskGroup.version).is_(None) if version is None else col(TaskGroup.version) == version
    )
    return [col(TaskGroup.pkg_name) == pkg_name, same_version]


async def check_not_duplicate(
    session: AsyncSession,
    user_id: int,
    pkg_name: str,
    version: str | None,
    *,
    user_group_id: int | None = None,
    exclude: int | None = None,
) -> None:
    """422 if the user (or the target group) already has this package name and version."""
    where = visible_to(user_id)
    if user_group_id is not None:
        where = or_(where, col(TaskGroup.user_group_id) == user_group_id)
    query = select(TaskGroup.id).where(where, *_same_package(pkg_name, version))
    if exclude is not None:
        query = query.where(col(TaskGroup.id) != exclude)
    clash = (await session.exec(query)).first()
    if clash is not None:
        shown = f"{pkg_name} {version}" if version is not None else pkg_name
        raise InvalidError(
            f"task group {clash} already provides {shown!r} to you: choose another name or version",
        )


async def check_unique_in_group(
    session: AsyncSession, group: TaskGroup, user_group_id: int
) -> None:
    """Sharing with a group that already has this package name and version is refused."""
    query = select(TaskGroup.id).where(
        col(TaskGroup.user_group_id) == user_group_id,
        col(TaskGroup.id) != group.id,
        *_same_package(group.pkg_name, group.version),
    )
    clash = (await session.exec(query)).first()
    if clash is not None:
        raise InvalidError(
            f"group {user_group_id} already has task group {clash} with the same "
            "package name and version",
        )


# --- Reading ----------------------------------------------------------------------------------


async def tasks_of_groups(session: AsyncSession, group_ids: list[int]) -> dict[int, list[Task]]:
    found: dict[int, list[Task]] = defaultdict(list)
    if not group_ids:
        return found
    rows = await session.exec(
        select(Task).where(col(Task.taskgroupv2_id).in_(group_ids)).order_by(col(Task.id))
    )
    for task in rows.all():
        found[task.taskgroupv2_id].append(task)
    return found


GroupReadModel = TypeVar("GroupReadModel", TaskGroupRead, TaskGroupReadSlim, TaskGroupReadSuperuser)


async def groups_in_use(session: AsyncSession, group_ids: list[int]) -> set[int]:
    """The groups among these with a task in some workflow."""
    if not group_ids:
        return set()
    rows = await session.exec(
        select(Task.taskgroupv2_id)
        .join(WorkflowTask, col(WorkflowTask.task_id) == Task.id)
        .where(col(Task.taskgroupv2_id).in_(group_ids))
        .distinct()
    )
    return set(rows.all())


async def owner_emails(session: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = await session.exec(
        select(UserOAuth.id, UserOAuth.email).where(col(UserOAuth.id).in_(user_ids))
    )
    return {user_id: email for user_id, email in rows.all() if user_id is not None}


async def task_group_reads(
    session: AsyncSession,
    groups: list[TaskGroup],
    # mypy cannot check a default against a TypeVar bound; TaskGroupRead is within it.
    model: type[GroupReadModel] = TaskGroupRead,  # type: ignore[assignment]
    *,
    args_schema: bool = True,
) -> list[GroupReadModel]:
    """The groups as `model`, with their tasks, owner's email and whether they are in use."""
    ids = [group.id for group in groups if group.id is not None]
    tasks = await tasks_of_groups(session, ids)
    used = await groups_in_use(session, ids)
    emails = await owner_emails(session, {group.user_id for group in groups})
    reads = []
    for group in groups:
        task_list = [task.model_dump() for task in tasks.get(group.id or 0, [])]
        if not args_schema:
            for item in task_list:
                item["args_schema_non_parallel"] = item["args_schema_parallel"] = None
        fields = group.model_dump()
        reads.append(
            model.model_validate(
                {
                    **fields,
                    "task_list": task_list,
                    "user_email": emails.get(group.user_id, ""),
                    "in_use": group.id in used,
                    "pinned_package_versions_post": fields["pinned_package_versions"],
                }
            )
        )
    return reads


async def task_group_read(session: AsyncSession, group: TaskGroup) -> TaskGroupRead:
    (read,) = await task_group_reads(session, [group])
    return read


def version_sort_key(version: str | None) -> tuple[int, Any]:
    """Ascending order of versions: none, then unparsable ones by text, then PEP 440 ones."""
    if version is None:
        return (0, "")
    try:
        return (2, Version(version))
    except InvalidVersion:
        return (1, version)


async def _pick_one_per_version(
    session: AsyncSession, user: UserOAuth, groups: list[TaskGroup], default_group_id: int | None
) -> list[TaskGroup]:
    """Of the groups sharing a package name and version, the one this user would use.

    Fractal's order: the user's own group, then the default user group's, then that of the
    user group the user joined first.
    """
    assert user.id is not None
    links = (
        await session.exec(
            select(LinkUserGroup.group_id)
            .where(LinkUserGroup.user_id == user.id)
            .order_by(col(LinkUserGroup.timestamp_created), col(LinkUserGroup.group_id))
        )
    ).all()
    joined_rank = {group_id: rank for rank, group_id in enumerate(links)}

    def priority(group: TaskGroup) -> tuple[int, int, int]:
        if group.user_id == user.id:
            return (0, 0, group.id or 0)
        if default_group_id is not None and group.user_group_id == default_group_id:
            return (1, 0, group.id or 0)
        return (2, joined_rank.get(group.user_group_id or 0, len(links)), group.id or 0)

    chosen = []
    for _version, same in itertools.groupby(groups, key=lambda group: group.version):
        chosen.append(min(same, key=priority))
    return chosen


async def task_groups_by_package(
    session: AsyncSession,
    user: UserOAuth,
    *,
    only_active: bool,
    only_owner: bool,
    default_group_name: str,
) -> list[tuple[str, list[TaskGroupReadSlim]]]:
    """GET /api/v2/task-group/: [(pkg_name, its groups, newest version first)], one per version."""
    assert user.id is not None
    where = col(TaskGroup.user_id) == user.id if only_owner else visible_to(user.id)
    query = select(TaskGroup).where(where).order_by(col(TaskGroup.pkg_name), col(TaskGroup.id))
    if only_active:
        query = query.where(col(TaskGroup.active).is_(True))
    groups = list((await session.exec(query)).all())
    default_group_id = (
        await session.exec(select(UserGroup.id).where(UserGroup.name == default_group_name))
    ).first()
    by_package: list[tuple[str, list[TaskGroup]]] = []
    for pkg_name, same in itertools.groupby(groups, key=lambda group: group.pkg_name):
        newest_first = sorted(same, key=lambda group: version_sort_key(group.version), reverse=True)
        picked = await _pick_one_per_version(session, user, newest_first, default_group_id)
        by_package.append((pkg_name, picked))
    reads = await task_group_reads(
        session, [group for _name, picked in by_package for group in picked], TaskGroupReadSlim
    )
    read_of = {read.id: read for read in reads}
    return [
        (pkg_name, [read_of[group.id or 0] for group in picked]) for pkg_name, picked in by_package
    ]


async def used_in_workflows(session: AsyncSession, task_ids: list[int]) -> int:
    if not task_ids:
        return 0
    query = (
        select(func.count())
        .select_from(WorkflowTask)
        .where(col(WorkflowTask.task_id).in_(task_ids))
    )
    return (await session.exec(query)).one()


@dataclass
class ActivityFilters:
    """Fractal's filters of the activity lists (a user's own, and the admin's); None: any."""

    task_group_activity_id: int | None = None
    user_id: int | None = None
    taskgroupv2_id: int | None = None
    pkg_name: str | None = None
    status: str | None = None
    action: str | None = None
    timestamp_started_min: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        equal = {
            col(TaskGroupActivity.id): self.task_group_activity_id,
            col(TaskGroupActivity.user_id): self.user_id,
            col(TaskGroupActivity.taskgroupv2_id): self.taskgroupv2_id,
            col(TaskGroupActivity.status): self.status,
            col(TaskGroupActivity.action): self.action,
        }
        where = [column == value for column, value in equal.items() if value is not None]
        if self.pkg_name is not None:
            where.append(col(TaskGroupActivity.pkg_name).icontains(self.pkg_name, autoescape=True))
        if self.timestamp_started_min is not None:
            where.append(col(TaskGroupActivity.timestamp_started) >= self.timestamp_started_min)
        return where


async def activities(session: AsyncSession, filters: ActivityFilters) -> list[TaskGroupActivity]:
    query = (
        select(TaskGroupActivity).where(*filters.conditions()).order_by(col(TaskGroupActivity.id))
    )
    return list((await session.exec(query)).all())


async def list_tasks(
    session: AsyncSession,
    user_id: int,
    category: str | None = None,
    modality: str | None = None,
    author: str | None = None,
) -> list[Task]:
    """The tasks of active groups the user sees; category and modality in any letter case,
    author a part of the authors."""
    query = (
        select(Task)
        .join(TaskGroup, col(TaskGroup.id) == Task.taskgroupv2_id)
        .where(visible_to(user_id), col(TaskGroup.active).is_(True))
        .order_by(col(Task.id))
    )
    if category is not None:
        query = query.where(func.lower(col(Task.category)) == category.lower())
    if modality is not None:
        query = query.where(func.lower(col(Task.modality)) == modality.lower())
    if author is not None:
        query = query.where(col(Task.authors).icontains(author, autoescape=True))
    return list((await session.exec(query)).all())


async def tasks_by_ids(session: AsyncSession, task_ids: list[int]) -> list[Task]:
    """Those tasks, by id; 404 naming the ids that do not exist."""
    wanted = sorted(set(task_ids))
    query = select(Task).where(col(Task.id).in_(wanted)).order_by(col(Task.id))
    tasks = list((await session.exec(query)).all())
    missing = sorted(set(wanted) - {task.id for task in tasks})
    if missing:
        raise NotFoundError(f"tasks not found: {missing}")
    return tasks


# --- Changing ---------------------------------------------------------------------------------


async def create_task_group(
    session: AsyncSession,
    user: UserOAuth,
    *,
    pkg_name: str,
    version: str | None,
    user_group_id: int | None,
    tasks: list[Task],
    path: str | None = None,
) -> tuple[TaskGroup, list[Task]]:
    """A task group of origin "other" holding these (not yet saved) tasks; committed."""
    assert user.id is not None
    await check_not_duplicate(session, user.id, pkg_name, version, user_group_id=user_group_id)
    profile = await session.get(Profile, user.profile_id) if user.profile_id else None
    group = TaskGroup(
        user_id=user.id,
        user_group_id=user_group_id,
        resource_id=profile.resource_id if profile else None,
        origin=ORIGIN_OTHER,
        pkg_name=pkg_name,
        version=version,
        path=path,
    )
    session.add(group)
    await session.flush()
    assert group.id is not None
    for task in tasks:
        task.taskgroupv2_id = group.id
        session.add(task)
    await session.commit()
    return group, tasks


async def update_task_group(
    session: AsyncSession, user: UserOAuth, group: TaskGroup, payload: TaskGroupUpdate
) -> None:
    """Share the group with another user group (or none); committed."""
    changes = payload.model_dump(exclude_unset=True)
    if "user_group_id" in changes:
        new_group_id = changes["user_group_id"]
        if new_group_id is not None:
            await check_can_share_with(session, user, new_group_id)
            await check_unique_in_group(session, group, new_group_id)
        group.user_group_id = new_group_id
        await session.commit()


NOT_NULL_FIELDS = ("name", "input_types", "output_types", "tags")


async def update_task(session: AsyncSession, task: Task, changes: dict[str, Any]) -> Task:
    """Apply a TaskUpdate; a task keeps exactly the commands its type needs."""
    non_parallel, parallel = COMMANDS_OF_TYPE.get(task.type, (True, True))
    needs = {"command_non_parallel": non_parallel, "command_parallel": parallel}
    for key, value in changes.items():
        if key in needs:
            if value is not None and not needs[key]:
                raise InvalidError(f"a task of type {task.type!r} cannot have a {key}")
            if value is None and needs[key]:
                raise InvalidError(f"a task of type {task.type!r} needs its {key}")
        elif key in NOT_NULL_FIELDS and value is None:
            raise InvalidError(f"{key} cannot be null")
    new_name = changes.get("name")
    if new_name is not None and new_name != task.name:
        sibling = (
            await session.exec(
                select(Task.id).where(
                    Task.taskgroupv2_id == task.taskgroupv2_id,
                    Task.name == new_name,
                    col(Task.id) != task.id,
                )
            )
        ).first()
        if sibling is not None:
            raise InvalidError(
                f"task {sibling} of the same task group is already named {new_name!r}"
            )
    for key, value in changes.items():
        setattr(task, key, value)
    await session.commit()
    await session.refresh(task)
    return task


async def _check_unused(session: AsyncSession, task_ids: list[int], what: str) -> None:
    used = await used_in_workflows(session, task_ids)
    if used:
        raise InvalidError(
            f"{what} is used by {used} workflow task(s): remove them from their workflows first",
        )


async def delete_task(session: AsyncSession, task: Task, group: TaskGroup) -> None:
    """Delete a task; a task group left without tasks goes with it."""
    assert task.id is not None
    await _check_unused(session, [task.id], f"task {task.id}")
    await session.delete(task)
    await session.flush()
    remaining = (
        await session.exec(
            select(func.count()).select_from(Task).where(Task.taskgroupv2_id == group.id)
        )
    ).one()
    if remaining == 0:
        await _delete_group_row(session, group)
    await session.commit()


async def delete_task_group(session: AsyncSession, group: TaskGroup) -> None:
    ids = list((await session.exec(select(Task.id).where(Task.taskgroupv2_id == group.id))).all())
    await _check_unused(session, [i for i in ids if i is not None], f"task group {group.id}")
    await session.exec(delete(Task).where(col(Task.taskgroupv2_id) == group.id))
    await _delete_group_row(session, group)
    await session.commit()


async def _delete_group_row(session: AsyncSession, group: TaskGroup) -> None:
    # Activities stay, as a record of what happened, without their link to the group.
    await session.exec(
        update(TaskGroupActivity)
        .where(col(TaskGroupActivity.taskgroupv2_id) == group.id)
        .values(taskgroupv2_id=None)
    )
    await session.delete(group)


# --- Custom collection ------------------------------------------------------------------------


def check_interpreter(python: str) -> str:
    python = os.path.normpath(python)
    if not os.path.isfile(python) or not os.access(python, os.X_OK):
        raise InvalidError(f"python_interpreter {python!r} is not an executable file on the server")
    return python


def check_package_root(root: str) -> str:
    root = os.path.normpath(root)
    if not os.path.isdir(root):
        raise InvalidError(f"package_root {root!r} is not a folder on the server")
    return root


async def find_package_root(python: str, package_name: str) -> str:
    """The folder of an importable package, as the given interpreter sees it."""
    module = package_name.replace("-", "_")
    command = [python, "-I", "-c", _FIND_PACKAGE_SCRIPT, module]
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            command,
            capture_output=True,
            text=True,
            timeout=FIND_PACKAGE_TIMEOUT_SECONDS,
            cwd="/",
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise InvalidError(
            f"{python} did not find package {package_name!r} within "
            f"{FIND_PACKAGE_TIMEOUT_SECONDS} s",
        ) from error
    except OSError as error:
        raise InvalidError(f"cannot run {python}: {error}") from error
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1][:500]
        raise InvalidError(f"package {package_name!r} is not importable by {python}: {reason}")
    root = lines[-1].strip()
    if not os.path.isabs(root) or not os.path.isdir(root):
        raise InvalidError(f"{python} reported {root!r} as the folder of {package_name!r}")
    return os.path.normpath(root)


class ManifestError(ValueError):
    """The manifest does not fit the package it came with; the message says why."""


def build_command(python: str, package_root: str, executable: str) -> str:
    command = f"{shlex.quote(python)} {shlex.quote(os.path.join(package_root, executable))}"
    try:
        return check_command(command)  # the same check as a command saved through the API
    except CommandError as error:
        raise ManifestError(f"the command for {executable!r}: {error}") from None


def build_tasks(
    manifest: Manifest,
    python: str,
    package_root: str,
    version: str | None,
    *,
    is_file: Callable[[str], bool] = os.path.isfile,
) -> list[Task]:
    """Unsaved Task rows for every task of the manifest, with commands into package_root.

    `is_file` looks where the package is (on this machine unless told otherwise)."""
    tasks = []
    for item in manifest.task_list:
        commands: dict[str, str | None] = {}
        for step in ("non_parallel", "parallel"):
            executable = getattr(item, f"executable_{step}")
            if executable is None:
                commands[step] = None
                continue
            if not is_file(os.path.join(package_root, executable)):
                raise ManifestError(
                    f"task {item.name!r}: executable {executable!r} is not a file "
                    f"under {package_root}"
                )
            commands[step] = build_command(python, package_root, executable)
        assert item.type is not None
        tasks.append(
            Task(
                taskgroupv2_id=0,
                name=item.name,
                type=item.type,
                version=version,
                command_non_parallel=commands["non_parallel"],
                command_parallel=commands["parallel"],
                meta_non_parallel=item.meta_non_parallel,
                meta_parallel=item.meta_parallel,
                args_schema_non_parallel=item.args_schema_non_parallel,
                args_schema_parallel=item.args_schema_parallel,
                args_schema_version=manifest.args_schema_version,
                docs_info=item.docs_info,
                docs_link=item.docs_link,
                input_types=item.input_types,
                output_types=item.output_types,
                category=item.category,
                modality=item.modality,
                authors=manifest.authors,
                tags=item.tags,
            )
        )
    return tasks


def tasks_from_manifest(
    manifest: Manifest, python: str, package_root: str, version: str | None
) -> list[Task]:
    """`build_tasks` for a request: a manifest that does not fit is a 422."""
    try:
        return build_tasks(manifest, python, package_root, version)
    except ManifestError as error:
        raise InvalidError(str(error)) from None


async def usable_task(
    session: AsyncSession, user: UserOAuth, task_id: int
) -> tuple[Task, TaskGroup]:
    """A task the user may put in a workflow or run: visible, and of an active group."""
    task, group = await task_for(session, user, task_id)
    if not group.active:
        raise InvalidError(f"task {task_id} belongs to an inactive task group")
    return task, group
