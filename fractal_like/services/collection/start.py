"""What the routes do: check a request, record the task group and a pending activity.

Nothing here installs anything: the work is done by a runner's collector. The folder of
a new task group is created here (with the uploaded wheel in it) so that two requests can
never collect into the same folder; on slurm_ssh it is on the login node, made by the
collector, and only an uploaded wheel waits here (see collect.upload_folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ...models import Profile, Resource, TaskGroup, TaskGroupActivity, UserOAuth
from ...models._types import utc_now
from ...models.task import ActivityAction, ActivityStatus, TaskGroupOrigin
from ...schemas.task import TaskGroupOverridesPip
from ...schemas.task_collection import (
    CollectPipRequest,
    CollectRequestError,
    package_extras,
    pinned_versions,
)
from ..errors import InvalidError, TooLargeError
from ..slurm_place import ssh_registry
from ..tasks import check_not_duplicate, delete_task_group
from .collect import group_folder
from .context import active_jobs_using, check_unused, delete_group_rows, owner_profile, place_for
from .files import UnsafeRemovalError, make_folder, remove_folder
from .place import StepFailedError, tasks_root
from .python import PythonNotAvailableError, choose_python
from .upload import Upload

logger = logging.getLogger("fractal_like.collection")
UPLOAD_CHUNK = 1024 * 1024
COLLECTED = (TaskGroupOrigin.PYPI, TaskGroupOrigin.WHEEL_FILE)
# Groups whose folder and environment are ours (their lifecycle is background work).
WITH_FILES = (*COLLECTED, TaskGroupOrigin.PIXI)


async def _save_upload(upload: Upload, target: Path, max_bytes: int) -> None:
    """Write the uploaded wheel to `target`; 413 past the limit, 422 if it is not a wheel."""
    size = 0
    with target.open("wb") as handle:
        while chunk := await upload.read(UPLOAD_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise TooLargeError(f"the wheel is larger than {max_bytes} bytes")
            await asyncio.to_thread(handle.write, chunk)
    if size == 0:
        raise InvalidError("the uploaded wheel file is empty")
    problem = await asyncio.to_thread(_wheel_problem, target)
    if problem:
        raise InvalidError(f"{target.name} is not a usable wheel: {problem}")


def _wheel_problem(path: Path) -> str | None:
    if not zipfile.is_zipfile(path):
        return "it is not a zip archive"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any(name.endswith(".dist-info/METADATA") for name in names):
        return "it has no .dist-info/METADATA"
    return None


async def start_pip_collection(
    session: AsyncSession,
    user: UserOAuth,
    resource: Resource,
    profile: Profile | None,
    request: CollectPipRequest,
    *,
    user_group_id: int | None,
    upload: Upload | None,
    max_bytes: int,
) -> TaskGroupActivity:
    """On slurm_ssh the group's folder is on the login node, made by the collector as the
    profile's user; an uploaded wheel waits under the resource's tasks_local_dir until the
    collector copies it there."""
    assert user.id is not None
    try:
        python = choose_python(resource, request.python_version)
        root = tasks_root(resource, profile)
    except ValueError as error:  # PythonNotAvailableError too
        raise InvalidError(str(error)) from None
    pkg_name, version = request.pkg_name, request.version
    await check_not_duplicate(session, user.id, pkg_name, version, user_group_id=user_group_id)
    path = venv_path = wheel_path = local = None
    if version is not None:
        path = group_folder(root, user.id, pkg_name, version)
        venv_path = str(PurePosixPath(path) / "venv")
        clash = (await session.exec(select(TaskGroup.id).where(TaskGroup.path == path))).first()
        if clash is not None:
            raise InvalidError(f"task group {clash} already uses the folder {path}")
        here = group_folder(resource.tasks_local_dir, user.id, pkg_name, version)
        if here == path or request.wheel is not None:
            await _new_local_folder(here)
            local = here
    try:
        if upload is not None and request.wheel is not None:
            assert path is not None and local is not None
            target = Path(local) / request.wheel.filename
            await _save_upload(upload, target, max_bytes)
            wheel_path = str(PurePosixPath(path) / request.wheel.filename)
        group = TaskGroup(
            user_id=user.id,
            user_group_id=user_group_id,
            resource_id=resource.id,
            origin=TaskGroupOrigin.WHEEL_FILE if request.wheel else TaskGroupOrigin.PYPI,
            pkg_name=pkg_name,
            version=version,
            python_version=python.version,
            path=path,
            venv_path=venv_path,
            wheel_path=wheel_path,
            pip_extras=",".join(request.extras) or None,
            pinned_package_versions=request.pins_post,
            pinned_package_versions_pre=request.pins_pre,
        )
        session.add(group)
        await session.flush()
        activity = TaskGroupActivity(
            user_id=user.id,
            taskgroupv2_id=group.id,
            pkg_name=pkg_name,
            version=version,
            status=ActivityStatus.PENDING,
            action=ActivityAction.COLLECT,
            log=None,
        )
        session.add(activity)
        await session.commit()
    except BaseException:
        if local is not None:
            await asyncio.to_thread(_forget_folder, local, resource.tasks_local_dir)
        raise
    await session.refresh(activity)
    return activity


async def _new_local_folder(path: str) -> None:
    """Made here, so that two requests can never collect into the same folder."""
    try:
        await asyncio.to_thread(make_folder, path)
    except FileExistsError:
        raise InvalidError(
            f"the folder {path} already exists on the server: delete the task group "
            "that used it, or ask an admin to remove it",
        ) from None
    except OSError as error:
        raise InvalidError(f"cannot create {path}: {error.strerror}") from None


def _forget_folder(path: str, root: str) -> None:
    with contextlib.suppress(UnsafeRemovalError, OSError):
        remove_folder(path, root)


# --- Lifecycle --------------------------------------------------------------------------------


async def _check_no_activity(session: AsyncSession, group: TaskGroup) -> None:
    busy = (
        await session.exec(
            select(TaskGroupActivity).where(
                TaskGroupActivity.taskgroupv2_id == group.id,
                col(TaskGroupActivity.status).in_([ActivityStatus.PENDING, ActivityStatus.ONGOING]),
            )
        )
    ).first()
    if busy is not None:
        raise InvalidError(
            f"task group {group.id} is busy: activity {busy.id} ({busy.action}) is "
            f"{busy.status}; wait for it to end",
        )


async def _check_no_active_job(session: AsyncSession, group: TaskGroup) -> None:
    assert group.id is not None
    jobs = await active_jobs_using(session, group.id)
    if jobs:
        listed = ", ".join(f"job {job_id} ({status})" for job_id, status in jobs)
        raise InvalidError(
            f"task group {group.id} is used by {listed}: wait for it to end or stop it",
        )


def _activity(group: TaskGroup, action: ActivityAction, **fields: Any) -> TaskGroupActivity:
    assert group.id is not None
    return TaskGroupActivity(
        user_id=group.user_id,
        taskgroupv2_id=group.id,
        pkg_name=group.pkg_name,
        version=group.version,
        action=action,
        **fields,
    )


def _done_now(group: TaskGroup, action: ActivityAction, log: str) -> TaskGroupActivity:
    # Task groups registered by hand have no files of ours: their change is immediate.
    now = utc_now()
    return _activity(
        group, action, status=ActivityStatus.OK, log=log, timestamp_started=now, timestamp_ended=now
    )


async def start_lifecycle(
    session: AsyncSession, user: UserOAuth, group: TaskGroup, action: ActivityAction
) -> TaskGroupActivity:
    """Deactivate, reactivate or delete: checks, then a pending activity (or done at once)."""
    assert user.id is not None and group.id is not None
    await _check_no_activity(session, group)
    if action == ActivityAction.DEACTIVATE:
        if not group.active:
            raise InvalidError(f"task group {group.id} is already inactive")
        await _check_no_active_job(session, group)
    elif action == ActivityAction.REACTIVATE:
        if group.active:
            raise InvalidError(f"task group {group.id} is already active")
        if group.origin in COLLECTED and not group.pip_freeze:
            raise InvalidError(
                f"task group {group.id} has no pip freeze to rebuild its environment from",
            )
        if group.origin == TaskGroupOrigin.PIXI and not group.pip_freeze:
            raise InvalidError(f"task group {group.id} has no pixi.lock to rebuild it from")
    elif action == ActivityAction.DELETE:
        try:
            await check_unused(session, group.id, user.id)
        except StepFailedError as error:
            raise InvalidError(str(error)) from None
        await _check_no_active_job(session, group)
    if group.origin not in WITH_FILES:
        activity = await _change_now(session, group, action)
    else:
        activity = _activity(group, action, status=ActivityStatus.PENDING)
        if action == ActivityAction.DEACTIVATE:
            group.active = False  # no new job may use it from now on
        session.add(activity)
    await session.commit()
    await session.refresh(activity)
    return activity


async def _change_now(
    session: AsyncSession, group: TaskGroup, action: ActivityAction
) -> TaskGroupActivity:
    assert group.id is not None
    if action == ActivityAction.DELETE:
        activity = _done_now(group, action, f"deleted task group {group.id} and its tasks")
        activity.taskgroupv2_id = None
        session.add(activity)
        await session.flush()
        activity_id = activity.id
        await delete_group_rows(session, group.id)
        found = await session.get(TaskGroupActivity, activity_id)
        assert found is not None
        return found
    active = action == ActivityAction.REACTIVATE
    group.active = active
    activity = _done_now(
        group, action, f"task group of origin {group.origin!r}: set active={active}"
    )
    session.add(activity)
    return activity


async def delete_now(session: AsyncSession, group: TaskGroup, resource: Resource | None) -> None:
    """DELETE /task-group/{id}/: the rows at once, then, for a collected group, its folder."""
    await _check_no_activity(session, group)
    path = group.path if group.origin in WITH_FILES else None
    profile = await owner_profile(session, group) if resource is not None else None
    await delete_task_group(session, group)  # refuses (422) while workflows use its tasks
    if path is None:
        return
    try:
        if resource is None:
            raise UnsafeRemovalError("its resource no longer exists")
        # On slurm_ssh, over the API's own connection to the login node (slurm_place.py).
        place = place_for(resource, profile, ssh_registry(), confine=None)
        await place.remove_folder(path, tidy_parents=True)
    except (ValueError, OSError, StepFailedError) as error:  # UnsafeRemovalError too
        # The group is gone already; a leftover folder is only disk space for an admin.
        logger.warning("task group %s deleted but %s was kept: %s", group.id, path, error)


# --- Reset (admin) ----------------------------------------------------------------------------


def _reset_overrides(group: TaskGroup, resource: Resource, body: TaskGroupOverridesPip) -> None:
    """Apply an admin's overrides to the group (not yet committed); 422 on a bad value."""
    try:
        if body.python_version is not None:
            group.python_version = choose_python(resource, body.python_version).version
        if body.pip_extras is not None:
            # An empty string clears the extras; otherwise the form's rules apply.
            extras = package_extras(body.pip_extras) if body.pip_extras.strip() else []
            group.pip_extras = ",".join(extras) or None
        group.pinned_package_versions_pre = pinned_versions(
            body.pinned_package_versions_pre, "pinned_package_versions_pre"
        )
        group.pinned_package_versions = pinned_versions(
            body.pinned_package_versions_post, "pinned_package_versions_post"
        )
    except (PythonNotAvailableError, CollectRequestError) as error:
        raise InvalidError(str(error)) from None


async def start_pip_reset(
    session: AsyncSession, group: TaskGroup, body: TaskGroupOverridesPip
) -> TaskGroupActivity:
    """POST /admin/v2/task-group/{id}/reset/pip/: checks, overrides, a pending activity.

    As in Fractal, only an inactive group of a pip origin is reset (deactivate it first),
    and the activity is its owner's, so that they see it among their own.
    """
    assert group.id is not None
    if group.origin not in COLLECTED:
        raise InvalidError(f"task group {group.id} has origin {group.origin!r} (expected pip)")
    if group.active:
        raise InvalidError(
            f"task group {group.id} is active: deactivate it before resetting it",
        )
    await _check_no_activity(session, group)
    resource = await session.get(Resource, group.resource_id) if group.resource_id else None
    if resource is None:
        raise InvalidError(f"task group {group.id} has no compute resource any more")
    _reset_overrides(group, resource, body)
    activity = _activity(group, ActivityAction.RESET, status=ActivityStatus.PENDING)
    session.add(activity)
    await session.commit()
    await session.refresh(activity)
    return activity
