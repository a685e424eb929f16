"""Tasks under /api/v2/task/, task groups under /api/v2/task-group/, and the task admin routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status
from pydantic import AwareDatetime

from ...models import Resource, Task, TaskGroupActivity
from ...models.task import ActivityAction, ActivityStatus
from ...schemas._base import Id, Text
from ...schemas.task import (
    TaskCollectCustom,
    TaskCreate,
    TaskGroupActivityRead,
    TaskGroupRead,
    TaskGroupReadSlim,
    TaskGroupUpdate,
    TaskIdList,
    TaskRead,
    TaskReadSlim,
    TaskUpdate,
)
from ...services import admin_task_groups
from ...services import tasks as task_service
from ...services.access import own_activity
from ...services.collection import start as collection
from ...services.tasks import task_for, task_group_for
from ..deps import SessionDep, SettingsDep
from ..query_params import utc_bound
from ..request_body import GuardedRoute
from ..users import ApiUser, Superuser

router = APIRouter(prefix="/api/v2", tags=["tasks"], route_class=GuardedRoute)
admin_router = APIRouter(prefix="/admin/v2/task", tags=["admin"], route_class=GuardedRoute)

GroupIdQuery = Id | None
FilterQuery = Annotated[Text | None, Query(min_length=1, max_length=255)]


# --- Tasks ------------------------------------------------------------------------------------


@router.get("/task/", response_model=list[TaskReadSlim])
async def list_tasks(
    user: ApiUser,
    session: SessionDep,
    category: FilterQuery = None,
    modality: FilterQuery = None,
    author: FilterQuery = None,
) -> list[Task]:
    assert user.id is not None
    return await task_service.list_tasks(session, user.id, category, modality, author)


@router.post("/task/", response_model=TaskRead, status_code=status.HTTP_201_CREATED)
async def create_task(
    payload: TaskCreate,
    user: ApiUser,
    session: SessionDep,
    settings: SettingsDep,
    private: bool = False,
    user_group_id: GroupIdQuery = None,
) -> Task:
    group_id = await task_service.target_user_group(
        session,
        user,
        private=private,
        user_group_id=user_group_id,
        default_group_name=settings.DEFAULT_GROUP_NAME,
    )
    task = Task(taskgroupv2_id=0, **payload.model_dump())
    _group, (created,) = await task_service.create_task_group(
        session,
        user,
        pkg_name=payload.name,
        version=payload.version,
        user_group_id=group_id,
        tasks=[task],
    )
    return created


@router.post(
    "/task/collect/custom/", response_model=list[TaskRead], status_code=status.HTTP_201_CREATED
)
async def collect_custom(
    payload: TaskCollectCustom,
    user: ApiUser,
    session: SessionDep,
    settings: SettingsDep,
    private: bool = False,
    user_group_id: GroupIdQuery = None,
) -> list[Task]:
    group_id = await task_service.target_user_group(
        session,
        user,
        private=private,
        user_group_id=user_group_id,
        default_group_name=settings.DEFAULT_GROUP_NAME,
    )
    python = task_service.check_interpreter(payload.python_interpreter)
    if payload.package_root is not None:
        root = task_service.check_package_root(payload.package_root)
    else:
        assert payload.package_name is not None
        root = await task_service.find_package_root(python, payload.package_name)
    tasks = task_service.tasks_from_manifest(payload.manifest, python, root, payload.version)
    _group, created = await task_service.create_task_group(
        session,
        user,
        pkg_name=payload.label,
        version=payload.version,
        user_group_id=group_id,
        tasks=tasks,
        path=root,
    )
    return created


@router.get("/task/{task_id}/", response_model=TaskRead)
async def get_task(task_id: Id, user: ApiUser, session: SessionDep) -> Task:
    task, _group = await task_for(session, user, task_id)
    return task


@router.patch("/task/{task_id}/", response_model=TaskRead)
async def update_task(task_id: Id, payload: TaskUpdate, user: ApiUser, session: SessionDep) -> Task:
    task, _group = await task_for(session, user, task_id, manage=True)
    return await task_service.update_task(session, task, payload.model_dump(exclude_unset=True))


@router.delete("/task/{task_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_task(task_id: Id, user: ApiUser, session: SessionDep) -> Response:
    task, group = await task_for(session, user, task_id, manage=True)
    await task_service.delete_task(session, task, group)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- Task groups ------------------------------------------------------------------------------


@router.get("/task-group/", response_model=list[tuple[str, list[TaskGroupReadSlim]]])
async def list_task_groups(
    user: ApiUser,
    session: SessionDep,
    settings: SettingsDep,
    only_active: bool = False,
    only_owner: bool = False,
) -> list[tuple[str, list[TaskGroupReadSlim]]]:
    """Fractal's shape: [pkg_name, [its groups, newest version first]] pairs, by name."""
    return await task_service.task_groups_by_package(
        session,
        user,
        only_active=only_active,
        only_owner=only_owner,
        default_group_name=settings.DEFAULT_GROUP_NAME,
    )


# The activity routes come before /task-group/{task_group_id}/, which would otherwise match them.
@router.get("/task-group/activity/", response_model=list[TaskGroupActivityRead])
async def list_activities(
    user: ApiUser,
    session: SessionDep,
    task_group_activity_id: GroupIdQuery = None,
    taskgroupv2_id: GroupIdQuery = None,
    pkg_name: FilterQuery = None,
    activity_status: Annotated[ActivityStatus | None, Query(alias="status")] = None,
    action: ActivityAction | None = None,
    timestamp_started_min: AwareDatetime | None = None,
) -> list[TaskGroupActivity]:
    assert user.id is not None
    filters = task_service.ActivityFilters(
        task_group_activity_id=task_group_activity_id,
        user_id=user.id,  # a user sees only their own activities
        taskgroupv2_id=taskgroupv2_id,
        pkg_name=pkg_name,
        status=activity_status,
        action=action,
        timestamp_started_min=utc_bound(timestamp_started_min, "timestamp_started_min"),
    )
    return await task_service.activities(session, filters)


@router.get("/task-group/activity/{task_group_activity_id}/", response_model=TaskGroupActivityRead)
async def get_activity(
    task_group_activity_id: Id, user: ApiUser, session: SessionDep
) -> TaskGroupActivity:
    return await own_activity(session, user, task_group_activity_id)


@router.get("/task-group/{task_group_id}/", response_model=TaskGroupRead)
async def get_task_group(task_group_id: Id, user: ApiUser, session: SessionDep) -> TaskGroupRead:
    group = await task_group_for(session, user, task_group_id)
    return await task_service.task_group_read(session, group)


@router.patch("/task-group/{task_group_id}/", response_model=TaskGroupRead)
async def update_task_group(
    task_group_id: Id, payload: TaskGroupUpdate, user: ApiUser, session: SessionDep
) -> TaskGroupRead:
    group = await task_group_for(session, user, task_group_id, manage=True)
    await task_service.update_task_group(session, user, group, payload)
    return await task_service.task_group_read(session, group)


@router.delete("/task-group/{task_group_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_task_group(task_group_id: Id, user: ApiUser, session: SessionDep) -> Response:
    group = await task_group_for(session, user, task_group_id, manage=True)
    resource = await session.get(Resource, group.resource_id) if group.resource_id else None
    await collection.delete_now(session, group, resource)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- Admin: core tasks ------------------------------------------------------------------------


async def _set_core(session: SessionDep, task_ids: list[int], is_core: bool) -> list[Task]:
    tasks = await task_service.tasks_by_ids(session, task_ids)
    await admin_task_groups.set_core(session, tasks, is_core)
    return tasks


@admin_router.post("/make-core/", response_model=list[TaskRead])
async def make_core(
    task_ids: Annotated[TaskIdList, Body()], _admin: Superuser, session: SessionDep
) -> list[Task]:
    return await _set_core(session, task_ids, True)


@admin_router.post("/make-not-core/", response_model=list[TaskRead])
async def make_not_core(
    task_ids: Annotated[TaskIdList, Body()], _admin: Superuser, session: SessionDep
) -> list[Task]:
    return await _set_core(session, task_ids, False)
