"""Workflow templates: who may see them and use them, and their list grouped by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, tuple_
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import LinkUserGroup, UserOAuth, WorkflowTemplate
from ..schemas.workflow import TemplateGroup, TemplateGroupMember
from .access import get_or_404
from .errors import ForbiddenError


def _visible(user_id: int) -> Any:
    """A template is the user's own or shared with a group the user is in."""
    member_of = select(LinkUserGroup.group_id).where(LinkUserGroup.user_id == user_id)
    return (col(WorkflowTemplate.user_id) == user_id) | col(WorkflowTemplate.user_group_id).in_(
        member_of
    )


def visible_templates(user_id: int):
    return select(WorkflowTemplate).where(_visible(user_id))


@dataclass(frozen=True)
class TemplateFilters:
    template_id: int | None = None
    is_owner: bool = False
    user_email: str | None = None
    name: str | None = None  # a part of the name, in any case
    version: int | None = None


@dataclass
class TemplateGroups:
    total: int  # groups (owner, name) matching the filters, on every page
    groups: list[TemplateGroup]
    emails: list[str]  # owners of all the templates the user can see


async def template_groups(
    session: AsyncSession,
    user_id: int,
    filters: TemplateFilters,
    page: int,
    page_size: int | None,
) -> TemplateGroups:
    """The templates a user can see, grouped by owner and name: the user's own groups
    first, then by owner's email and name; each group's versions newest first."""
    where = [_visible(user_id)]
    if filters.template_id is not None:
        where.append(col(WorkflowTemplate.id) == filters.template_id)
    if filters.is_owner:
        where.append(col(WorkflowTemplate.user_id) == user_id)
    if filters.user_email:
        where.append(col(UserOAuth.email) == filters.user_email)
    if filters.name:
        where.append(col(WorkflowTemplate.name).icontains(filters.name, autoescape=True))
    if filters.version:
        where.append(col(WorkflowTemplate.version) == filters.version)
    owner = col(UserOAuth.id) == WorkflowTemplate.user_id
    keys = (
        select(WorkflowTemplate.user_id, UserOAuth.email, WorkflowTemplate.name)
        .join(UserOAuth, owner)
        .where(*where)
        .group_by(col(WorkflowTemplate.user_id), col(UserOAuth.email), col(WorkflowTemplate.name))
    )
    total = (await session.exec(select(func.count()).select_from(keys.subquery()))).one()
    keys = keys.order_by(
        case((col(WorkflowTemplate.user_id) == user_id, 0), else_=1),
        col(UserOAuth.email),
        col(WorkflowTemplate.name),
    )
    if page_size is not None:
        keys = keys.offset((page - 1) * page_size).limit(page_size)
    page_keys = list((await session.exec(keys)).all())

    members: dict[tuple[int, str], list[TemplateGroupMember]] = {}
    if page_keys:
        rows = await session.exec(
            select(
                WorkflowTemplate.user_id,
                WorkflowTemplate.name,
                WorkflowTemplate.id,
                WorkflowTemplate.version,
            )
            .join(UserOAuth, owner)
            .where(*where)
            .where(
                tuple_(col(WorkflowTemplate.user_id), col(WorkflowTemplate.name)).in_(
                    [(owner_id, name) for owner_id, _email, name in page_keys]
                )
            )
            .order_by(col(WorkflowTemplate.version).desc())
        )
        for owner_id, name, template_id, version in rows.all():
            members.setdefault((owner_id, name), []).append(
                TemplateGroupMember(template_id=template_id, template_version=version)
            )
    emails = await session.exec(
        select(UserOAuth.email)
        .join(WorkflowTemplate, owner)
        .where(_visible(user_id))
        .distinct()
        .order_by(col(UserOAuth.email))
    )
    return TemplateGroups(
        total=total,
        groups=[
            TemplateGroup(
                user_email=email, template_name=name, templates=members.get((owner_id, name), [])
            )
            for owner_id, email, name in page_keys
        ],
        emails=list(emails.all()),
    )


async def template_for_use(
    session: AsyncSession, user: UserOAuth, template_id: int
) -> WorkflowTemplate:
    template = await get_or_404(session, WorkflowTemplate, template_id, "workflow template")
    assert user.id is not None
    query = visible_templates(user.id).where(WorkflowTemplate.id == template_id)
    if (await session.exec(query)).first() is None:
        raise ForbiddenError(f"you have no access to workflow template {template_id}")
    return template


async def template_owned(
    session: AsyncSession, user: UserOAuth, template_id: int
) -> WorkflowTemplate:
    template = await template_for_use(session, user, template_id)
    if template.user_id != user.id:
        raise ForbiddenError("only the template's owner can change or delete it")
    return template


async def check_group_member(session: AsyncSession, user: UserOAuth, group_id: int | None) -> None:
    if group_id is None:
        return
    assert user.id is not None
    if await session.get(LinkUserGroup, (group_id, user.id)) is None:
        raise ForbiddenError(f"you are not a member of group {group_id}")
