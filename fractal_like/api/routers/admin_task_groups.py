"""Every user's task groups under /admin/v2/task-group/ and tasks under GET /admin/v2/task/
(superusers only): filtered pages, show, share, the lifecycle, core flags and resets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime

from ...models import TaskGroup, TaskGroupActivity
from ...models.task import ActivityAction, ActivityStatus, TaskGroupOrigin
from ...schemas._base import Id, Text
from ...schemas.history import Page
from ...schemas.task import (
    TaskGroupActivityRead,
    TaskGroupOverridesPip,
    TaskGroupOverridesPixi,
    TaskGroupReadSuperuser,
    TaskGroupUpdate,
    TaskInfo,
    TaskType,
)
from ...services import admin_task_groups as service
from ...services import tasks as task_service
from ...services.access import get_or_404
from ...services.collection import pixi_start
from ...services.collection import start as collection
from ..deps import SessionDep
from ..query_params import PaginationDep, utc_bound
from ..request_body import GuardedRoute
from ..users import Superuser

router = APIRouter(prefix="/admin/v2/task-group", tags=["admin"], route_class=GuardedRoute)
task_router = APIRouter(prefix="/admin/v2/task", tags=["admin"], route_class=GuardedRoute)

Contains = Annotated[Text | None, Query(min_length=1, max_length=255)]
Timestamp = AwareDatetime | None


async def _group(session: SessionDep, task_group_id: int) -> TaskGroup:
    return await get_or_404(session, TaskGroup, task_group_id, "task group")


async def _read(session: SessionDep, group: TaskGroup) -> TaskGroupReadSuperuser:
    (read,) = await task_service.task_group_reads(session, [group], TaskGroupReadSuperuser)
    return read


@router.get("/", response_model=Page[TaskGroupReadSuperuser])
async def list_task_groups(
    _admin: Superuser,
    session: SessionDep,
    pages: PaginationDep,
    task_group_id: Id | None = None,
    user_id: Id | None = None,
    user_group_id: Id | None = None,
    private: bool | None = None,
    active: bool | None = None,
    pkg_name: Contains = None,
    origin: TaskGroupOrigin | None = None,
    timestamp_last_used_min: Timestamp = None,
    timestamp_last_used_max: Timestamp = None,
    resource_id: Id | None = None,
    in_use: bool | None = None,
) -> Page[TaskGroupReadSuperuser]:
    filters = service.TaskGroupFilters(
        task_group_id=task_group_id,
        user_id=user_id,
        user_group_id=user_group_id,
        private=private,
        active=active,
        pkg_name=pkg_name,
        origin=origin,
        timestamp_last_used_min=utc_bound(timestamp_last_used_min, "timestamp_last_used_min"),
        timestamp_last_used_max=utc_bound(timestamp_last_used_max, "timestamp_last_used_max"),
        resource_id=resource_id,
        in_use=in_use,
    )
    total, size, groups = await service.list_task_groups(
        session, filters, pages.page, pages.page_size
    )
    items = await task_service.task_group_reads(session, groups, TaskGroupReadSuperuser)
    return Page[TaskGroupReadSuperuser](
        current_page=pages.page, page_size=size, total_count=total, items=items
    )


# Before /{task_group_id}/, which would otherwise match it.
@router.get("/activity/", response_model=Page[TaskGroupActivityRead])
async def list_activities(
    _admin: Superuser,
    session: SessionDep,
    pages: PaginationDep,
    task_group_activity_id: Id | None = None,
    user_id: Id | None = None,
    taskgroupv2_id: Id | None = None,
    pkg_name: Contains = None,
    activity_status: Annotated[ActivityStatus | None, Query(alias="status")] = None,
    action: ActivityAction | None = None,
    timestamp_started_min: Timestamp = None,
) -> Page[TaskGroupActivityRead]:
    filters = task_service.ActivityFilters(
        task_group_activity_id=task_group_activity_id,
        user_id=user_id,
        taskgroupv2_id=taskgroupv2_id,
        pkg_name=pkg_name,
        status=activity_status,
        action=action,
        timestamp_started_min=utc_bound(timestamp_started_min, "timestamp_started_min"),
    )
    total, size, activities = await service.list_activities(
        session, filters, pages.page, pages.page_size
    )
    return Page[TaskGroupActivityRead](
        current_page=pages.page,
        page_size=size,
        total_count=total,
        items=[TaskGroupActivityRead.model_validate(activity) for activity in activities],
    )


@router.get("/{task_group_id}/", response_model=TaskGroupReadSuperuser)
async def get_task_group(
    task_group_id: Id, _admin: Superuser, session: SessionDep
) -> TaskGroupReadSuperuser:
    return await _read(session, await _group(session, task_group_id))


@router.patch("/{task_group_id}/", response_model=TaskGroupReadSuperuser)
async def update_task_group(
    task_group_id: Id, payload: TaskGroupUpdate, admin: Superuser, session: SessionDep
) -> TaskGroupReadSuperuser:
    group = await _group(session, task_group_id)
    await task_service.update_task_group(session, admin, group, payload)
    return await _read(session, group)


# --- Lifecycle: the user routes' own checks and activities, on anyone's group ----------------


async def _lifecycle(
    task_group_id: int, admin: Superuser, session: SessionDep, action: ActivityAction
) -> TaskGroupActivity:
    group = await _group(session, task_group_id)
    return await collection.start_lifecycle(session, admin, group, action)


@router.post(
    "/{task_group_id}/deactivate/",
    response_model=TaskGroupActivityRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def deactivate_task_group(
    task_group_id: Id, admin: Superuser, session: SessionDep
) -> TaskGroupActivity:
    return await _lifecycle(task_group_id, admin, session, ActivityAction.DEACTIVATE)


@router.post(
    "/{task_group_id}/reactivate/",
    response_model=TaskGroupActivityRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def reactivate_task_group(
    task_group_id: Id, admin: Superuser, session: SessionDep
) -> TaskGroupActivity:
    return await _lifecycle(task_group_id, admin, session, ActivityAction.REACTIVATE)


@router.post(
    "/{task_group_id}/delete/",
    response_model=TaskGroupActivityRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def delete_task_group(
    task_group_id: Id, admin: Superuser, session: SessionDep
) -> TaskGroupActivity:
    return await _lifecycle(task_group_id, admin, session, ActivityAction.DELETE)


@router.post(
    "/{task_group_id}/reset/pip/",
    response_model=TaskGroupActivityRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def reset_pip(
    task_group_id: Id, payload: TaskGroupOverridesPip, _admin: Superuser, session: SessionDep
) -> TaskGroupActivity:
    """Rebuild an inactive group's venv from its package (not its pip freeze)."""
    return await collection.start_pip_reset(session, await _group(session, task_group_id), payload)


@router.post(
    "/{task_group_id}/reset/pixi/",
    response_model=TaskGroupActivityRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def reset_pixi(
    task_group_id: Id, payload: TaskGroupOverridesPixi, _admin: Superuser, session: SessionDep
) -> TaskGroupActivity:
    """Rebuild an inactive pixi group's environment from its kept archive."""
    return await pixi_start.start_pixi_reset(
        session,
        await _group(session, task_group_id),
        use_pixi_lockfile=payload.use_pixi_lockfile,
    )


# --- Core tasks -------------------------------------------------------------------------------


async def _set_group_core(session: SessionDep, task_group_id: int, is_core: bool) -> Response:
    group = await _group(session, task_group_id)
    assert group.id is not None
    await service.set_core(session, await service.tasks_of_group(session, group.id), is_core)
    return Response(status_code=status.HTTP_200_OK)


@router.post("/{task_group_id}/make-core/", response_model=None)
async def make_core(task_group_id: Id, _admin: Superuser, session: SessionDep) -> Response:
    """Every task of the group becomes a core task."""
    return await _set_group_core(session, task_group_id, True)


@router.post("/{task_group_id}/make-not-core/", response_model=None)
async def make_not_core(task_group_id: Id, _admin: Superuser, session: SessionDep) -> Response:
    return await _set_group_core(session, task_group_id, False)


# --- Tasks ------------------------------------------------------------------------------------


@task_router.get("/", response_model=Page[TaskInfo])
async def list_tasks(
    _admin: Superuser,
    session: SessionDep,
    pages: PaginationDep,
    id: Id | None = None,
    version: Contains = None,
    name: Contains = None,
    task_type: TaskType | None = None,
    category: Contains = None,
    modality: Contains = None,
    author: Contains = None,
    resource_id: Id | None = None,
    owner_id: Id | None = None,
    task_group: Contains = None,
    core: bool | None = None,
    private: bool | None = None,
    active: bool | None = None,
) -> Page[TaskInfo]:
    """Tasks with their group's facts and the workflows (and projects) using them."""
    filters = service.TaskFilters(
        id=id,
        version=version,
        name=name,
        task_type=task_type,
        category=category,
        modality=modality,
        author=author,
        resource_id=resource_id,
        owner_id=owner_id,
        task_group=task_group,
        core=core,
        private=private,
        active=active,
    )
    total, size, items = await service.list_tasks(session, filters, pages.page, pages.page_size)
    return Page[TaskInfo](current_page=pages.page, page_size=size, total_count=total, items=items)
