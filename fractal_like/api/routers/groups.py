"""User groups under /auth/group/ (superusers only)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from ...models import UserGroup
from ...schemas._base import Id
from ...schemas.user import GroupCreate, GroupRead, GroupUpdate
from ...services.access import get_or_404, user_or_404
from ...services.errors import InvalidError
from ...services.groups import (
    add_new_member,
    all_groups,
    member_ids,
    remove_group,
    remove_member,
)
from ...services.unique import commit_unique
from ..deps import SessionDep
from ..request_body import GuardedRoute
from ..users import Superuser

router = APIRouter(prefix="/auth/group", tags=["groups"], route_class=GuardedRoute)


async def _get_group(session: SessionDep, group_id: Id) -> UserGroup:
    group = await get_or_404(session, UserGroup, group_id, "group")
    return group


async def _read(session: SessionDep, group: UserGroup, with_users: bool = True) -> GroupRead:
    data = GroupRead.model_validate(group)
    if with_users:
        assert group.id is not None
        data.user_ids = await member_ids(session, group.id)
    return data


def _is_default(request: Request, group: UserGroup) -> bool:
    return group.name == request.app.state.settings.DEFAULT_GROUP_NAME


# Without ?user_ids=true each group says `"user_ids": null`, as Fractal's does: clients
# (the fractal client's own tests among them) read the key.
@router.get("/", response_model=list[GroupRead])
async def list_groups(
    _admin: Superuser, session: SessionDep, user_ids: bool = False
) -> list[GroupRead]:
    groups = await all_groups(session)
    return [await _read(session, group, with_users=user_ids) for group in groups]


@router.post("/", response_model=GroupRead, status_code=status.HTTP_201_CREATED)
async def create_group(payload: GroupCreate, _admin: Superuser, session: SessionDep) -> GroupRead:
    group = UserGroup(name=payload.name)
    session.add(group)
    await commit_unique(session, taken=f"a group named {payload.name!r} already exists")
    await session.refresh(group)
    return await _read(session, group)


@router.get("/{group_id}/", response_model=GroupRead)
async def get_group(group_id: Id, _admin: Superuser, session: SessionDep) -> GroupRead:
    return await _read(session, await _get_group(session, group_id))


@router.patch("/{group_id}/", response_model=GroupRead)
async def update_group(
    request: Request, group_id: Id, payload: GroupUpdate, _admin: Superuser, session: SessionDep
) -> GroupRead:
    group = await _get_group(session, group_id)
    if payload.name is not None and payload.name != group.name:
        if _is_default(request, group):
            raise InvalidError("the default group cannot be renamed")
        group.name = payload.name
        await commit_unique(session, taken=f"a group named {payload.name!r} already exists")
    return await _read(session, group)


@router.delete("/{group_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_group(
    request: Request, group_id: Id, _admin: Superuser, session: SessionDep
) -> Response:
    group = await _get_group(session, group_id)
    if _is_default(request, group):
        raise InvalidError("the default group cannot be deleted")
    await remove_group(session, group)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{group_id}/add-user/{user_id}/", response_model=GroupRead)
async def add_user(group_id: Id, user_id: Id, _admin: Superuser, session: SessionDep) -> GroupRead:
    group = await _get_group(session, group_id)
    await user_or_404(session, user_id)
    await add_new_member(session, group_id, user_id)
    await session.commit()
    return await _read(session, group)


@router.post("/{group_id}/remove-user/{user_id}/", response_model=GroupRead)
async def remove_user(
    request: Request, group_id: Id, user_id: Id, _admin: Superuser, session: SessionDep
) -> GroupRead:
    group = await _get_group(session, group_id)
    await user_or_404(session, user_id)
    if _is_default(request, group):
        raise InvalidError("nobody can leave the default group")
    await remove_member(session, group_id, user_id)
    await session.commit()
    return await _read(session, group)
