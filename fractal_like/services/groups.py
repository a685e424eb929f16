"""User groups: the default group and memberships."""

from __future__ import annotations

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import LinkUserGroup, UserGroup, UserOAuth
from .errors import InvalidError, NotFoundError


async def ensure_default_group(session: AsyncSession, name: str) -> UserGroup:
    group = await group_named(session, name)
    if group is None:
        group = UserGroup(name=name)
        session.add(group)
        await session.commit()
        await session.refresh(group)
    return group


async def group_named(session: AsyncSession, name: str) -> UserGroup | None:
    return (await session.exec(select(UserGroup).where(UserGroup.name == name))).first()


async def all_groups(session: AsyncSession) -> list[UserGroup]:
    return list((await session.exec(select(UserGroup).order_by(col(UserGroup.id)))).all())


async def remove_group(session: AsyncSession, group: UserGroup) -> None:
    """The group and its memberships (the users stay)."""
    await session.exec(delete(LinkUserGroup).where(col(LinkUserGroup.group_id) == group.id))
    await session.delete(group)


async def check_groups_exist(session: AsyncSession, group_ids: set[int]) -> None:
    found = set(
        (await session.exec(select(UserGroup.id).where(col(UserGroup.id).in_(group_ids)))).all()
    )
    missing = sorted(group_ids - found)
    if missing:
        raise NotFoundError(f"groups not found: {missing}")


async def all_users(session: AsyncSession, profile_id: int | None = None) -> list[UserOAuth]:
    """Every user by id, or those of one profile."""
    query = select(UserOAuth).order_by(col(UserOAuth.id))
    if profile_id is not None:
        query = query.where(UserOAuth.profile_id == profile_id)
    return list((await session.exec(query)).all())


async def add_member(session: AsyncSession, group_id: int, user_id: int) -> None:
    existing = await session.get(LinkUserGroup, (group_id, user_id))
    if existing is None:
        session.add(LinkUserGroup(group_id=group_id, user_id=user_id))


async def add_new_member(session: AsyncSession, group_id: int, user_id: int) -> None:
    if await session.get(LinkUserGroup, (group_id, user_id)) is not None:
        raise InvalidError(f"user {user_id} is already a member of group {group_id}")
    await add_member(session, group_id, user_id)


async def remove_member(session: AsyncSession, group_id: int, user_id: int) -> None:
    link = await session.get(LinkUserGroup, (group_id, user_id))
    if link is None:
        raise InvalidError(f"user {user_id} is not a member of group {group_id}")
    await session.delete(link)


async def group_ids_names(session: AsyncSession, user_id: int) -> list[tuple[int, str]]:
    rows = await session.exec(
        select(UserGroup.id, UserGroup.name)
        .join(LinkUserGroup, col(LinkUserGroup.group_id) == UserGroup.id)
        .where(LinkUserGroup.user_id == user_id)
        .order_by(col(UserGroup.id))
    )
    return [(group_id, name) for group_id, name in rows.all() if group_id is not None]


async def member_ids(session: AsyncSession, group_id: int) -> list[int]:
    rows = await session.exec(
        select(LinkUserGroup.user_id)
        .where(LinkUserGroup.group_id == group_id)
        .order_by(col(LinkUserGroup.user_id))
    )
    return list(rows.all())


async def set_memberships(
    session: AsyncSession, user_id: int, group_ids: list[int], default_group_id: int
) -> None:
    """Make the user a member of exactly these groups (and always of the default one)."""
    wanted = set(group_ids) | {default_group_id}
    await session.exec(
        delete(LinkUserGroup).where(
            col(LinkUserGroup.user_id) == user_id, col(LinkUserGroup.group_id).not_in(wanted)
        )
    )
    for group_id in sorted(wanted):
        await add_member(session, group_id, user_id)
