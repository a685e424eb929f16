"""Workflow templates: who may see them and use them."""

from __future__ import annotations

from fastapi import HTTPException
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import LinkUserGroup, UserOAuth, WorkflowTemplate


def visible_templates(user_id: int):
    member_of = select(LinkUserGroup.group_id).where(LinkUserGroup.user_id == user_id)
    return select(WorkflowTemplate).where(
        (col(WorkflowTemplate.user_id) == user_id)
        | col(WorkflowTemplate.user_group_id).in_(member_of)
    )


async def template_for_use(
    session: AsyncSession, user: UserOAuth, template_id: int
) -> WorkflowTemplate:
    template = await session.get(WorkflowTemplate, template_id)
    if template is None:
        raise HTTPException(404, detail=f"workflow template {template_id} not found")
    assert user.id is not None
    query = visible_templates(user.id).where(WorkflowTemplate.id == template_id)
    if (await session.exec(query)).first() is None:
        raise HTTPException(403, detail=f"you have no access to workflow template {template_id}")
    return template


async def template_owned(
    session: AsyncSession, user: UserOAuth, template_id: int
) -> WorkflowTemplate:
    template = await template_for_use(session, user, template_id)
    if template.user_id != user.id:
        raise HTTPException(403, detail="only the template's owner can change or delete it")
    return template


async def check_group_member(session: AsyncSession, user: UserOAuth, group_id: int | None) -> None:
    if group_id is None:
        return
    assert user.id is not None
    if await session.get(LinkUserGroup, (group_id, user.id)) is None:
        raise HTTPException(403, detail=f"you are not a member of group {group_id}")
