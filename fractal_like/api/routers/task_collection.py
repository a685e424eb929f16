"""Task collection from packages, and the task-group lifecycle (Fractal v2 paths).

Each route checks the request and records a pending TaskGroupActivity (202); a runner's
collector does the work. `fractal task check-collection` follows the activity.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile, status

from ...models import TaskGroupActivity
from ...models.task import ActivityAction
from ...schemas._base import Id
from ...schemas.task import TaskGroupActivityRead
from ...schemas.task_collection import CollectRequestError, parse_collect_form
from ...services import tasks as task_service
from ...services.collection import pixi_start, start
from ...services.errors import InvalidError
from ...services.jobs import resource_of
from ..deps import SessionDep, SettingsDep
from ..request_body import UploadRoute
from ..users import ApiUser
from .tasks import GroupIdQuery

# Its wheel uploads take the larger body limit (MAX_REQUEST_BYTES).
router = APIRouter(prefix="/api/v2", tags=["task collection"], route_class=UploadRoute)

# Bounds on the raw form fields; their content is checked by parse_collect_form.
ShortField = Annotated[str | None, Form(max_length=300)]
PinsField = Annotated[str | None, Form(max_length=20_000)]


@router.post(
    "/task/collect/pip/",
    response_model=TaskGroupActivityRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def collect_pip(
    user: ApiUser,
    session: SessionDep,
    settings: SettingsDep,
    package: ShortField = None,
    package_version: ShortField = None,
    python_version: ShortField = None,
    package_extras: ShortField = None,
    pinned_package_versions_pre: PinsField = None,
    pinned_package_versions_post: PinsField = None,
    file: Annotated[UploadFile | None, File()] = None,
    private: bool = False,
    user_group_id: GroupIdQuery = None,
) -> TaskGroupActivity:
    """Collect a task package by name (from the resource's package index) or from a wheel."""
    try:
        request = parse_collect_form(
            package=package,
            package_version_field=package_version,
            python_version_field=python_version,
            package_extras_field=package_extras,
            pins_pre_field=pinned_package_versions_pre,
            pins_post_field=pinned_package_versions_post,
            wheel_filename=file.filename if file is not None else None,
            has_file=file is not None,
        )
    except CollectRequestError as error:  # a schema-level error: the schemas know no services
        raise InvalidError(str(error)) from None
    group_id = await task_service.target_user_group(
        session,
        user,
        private=private,
        user_group_id=user_group_id,
        default_group_name=settings.DEFAULT_GROUP_NAME,
    )
    profile, resource = await resource_of(session, user)
    return await start.start_pip_collection(
        session,
        user,
        resource,
        profile,
        request,
        user_group_id=group_id,
        upload=file,
        max_bytes=settings.MAX_REQUEST_BYTES,
    )


@router.post(
    "/task/collect/pixi/",
    response_model=TaskGroupActivityRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def collect_pixi(
    user: ApiUser,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    pixi_version: Annotated[str | None, Form(min_length=1, max_length=64)] = None,
    use_pixi_lockfile: Annotated[Literal["true", "false"], Form()] = "true",
    private: bool = False,
    user_group_id: GroupIdQuery = None,
) -> TaskGroupActivity:
    """Collect a pixi task package from its `<name>-<version>.tar.gz` (Fractal's form)."""
    _profile, resource = await resource_of(session, user)
    pixi_start.pixi_config(resource)  # Fractal answers this (a 422) before anything else
    group_id = await task_service.target_user_group(
        session,
        user,
        private=private,
        user_group_id=user_group_id,
        default_group_name=settings.DEFAULT_GROUP_NAME,
    )
    return await pixi_start.start_pixi_collection(
        session,
        user,
        resource,
        file,
        pixi_version=pixi_version,
        use_pixi_lockfile=use_pixi_lockfile == "true",
        user_group_id=group_id,
        max_bytes=settings.MAX_REQUEST_BYTES,
    )


async def _lifecycle(
    task_group_id: Id, user: ApiUser, session: SessionDep, action: ActivityAction
) -> TaskGroupActivity:
    group = await task_service.task_group_for(session, user, task_group_id, manage=True)
    return await start.start_lifecycle(session, user, group, action)


@router.post(
    "/task-group/{task_group_id}/deactivate/",
    response_model=TaskGroupActivityRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def deactivate_task_group(
    task_group_id: Id, user: ApiUser, session: SessionDep
) -> TaskGroupActivity:
    """Make the group's tasks unusable and remove its venv, keeping a pip freeze."""
    return await _lifecycle(task_group_id, user, session, ActivityAction.DEACTIVATE)


@router.post(
    "/task-group/{task_group_id}/reactivate/",
    response_model=TaskGroupActivityRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def reactivate_task_group(
    task_group_id: Id, user: ApiUser, session: SessionDep
) -> TaskGroupActivity:
    """Rebuild the venv of a deactivated group from its pip freeze."""
    return await _lifecycle(task_group_id, user, session, ActivityAction.REACTIVATE)


@router.post(
    "/task-group/{task_group_id}/delete/",
    response_model=TaskGroupActivityRead,
    status_code=status.HTTP_202_ACCEPTED,
)
async def delete_task_group(
    task_group_id: Id, user: ApiUser, session: SessionDep
) -> TaskGroupActivity:
    """Remove the group's folder, then the group and its tasks (refused while in use)."""
    return await _lifecycle(task_group_id, user, session, ActivityAction.DELETE)
