"""Workflow templates under /api/v2/workflow-template/."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from ...models import UserOAuth, WorkflowTemplate
from ...schemas._base import MAX_INT, Id, Text
from ...schemas.workflow import (
    TemplateCreate,
    TemplateImport,
    TemplatePage,
    TemplateRead,
    TemplateUpdate,
)
from ...services import workflows as workflow_service
from ...services.access import readable_workflow
from ...services.errors import InvalidError
from ...services.templates import (
    TemplateFilters,
    check_group_member,
    template_for_use,
    template_groups,
    template_owned,
)
from ...services.unique import commit_unique
from ..deps import SessionDep
from ..query_params import PaginationDep
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(prefix="/api/v2/workflow-template", tags=["templates"], route_class=GuardedRoute)


async def _read(session: SessionDep, template: WorkflowTemplate) -> TemplateRead:
    owner = await session.get(UserOAuth, template.user_id)
    return TemplateRead.model_validate(
        {**template.model_dump(), "user_email": owner.email if owner else ""}
    )


async def _store(session: SessionDep, template: WorkflowTemplate) -> TemplateRead:
    session.add(template)
    taken = f"you already have a template {template.name!r} version {template.version}"
    await commit_unique(session, taken)
    return await _read(session, template)


@router.get("/", response_model=TemplatePage)
async def list_templates(
    user: ApiUser,
    session: SessionDep,
    pages: PaginationDep,
    template_id: Id | None = None,
    is_owner: bool = False,
    user_email: Annotated[Text | None, Query(max_length=320)] = None,
    name: Annotated[Text | None, Query(max_length=255)] = None,
    version: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,  # 0: any, as Fractal
) -> TemplatePage:
    """The templates one can see, grouped by owner and name (see services.templates)."""
    assert user.id is not None
    filters = TemplateFilters(template_id, is_owner, user_email, name, version)
    found = await template_groups(session, user.id, filters, pages.page, pages.page_size)
    return TemplatePage(
        total_count=found.total,
        page_size=found.total if pages.page_size is None else pages.page_size,
        current_page=pages.page,
        items=found.groups,
        email_list=found.emails,
    )


def _refuse_empty(task_list: list, what: str) -> None:
    # A template is for making workflows with tasks: an empty one would only be noise.
    if not task_list:
        raise InvalidError(f"{what} has no tasks: there is nothing to make a template of")


@router.post("/", response_model=TemplateRead, status_code=status.HTTP_201_CREATED)
async def create_template(
    workflow_id: Id,
    payload: TemplateCreate,
    user: ApiUser,
    session: SessionDep,
    user_group_id: Id | None = None,
) -> TemplateRead:
    workflow = await readable_workflow(session, user, workflow_id)
    await check_group_member(session, user, user_group_id)
    exported = await workflow_service.export(session, workflow)
    _refuse_empty(exported.task_list, f"workflow {workflow_id}")
    assert user.id is not None
    template = WorkflowTemplate(
        user_id=user.id,
        user_group_id=user_group_id,
        name=payload.name,
        version=payload.version,
        description=payload.description,
        data=exported.model_dump(mode="json"),
    )
    return await _store(session, template)


@router.post("/import/", response_model=TemplateRead, status_code=status.HTTP_201_CREATED)
async def import_template(
    payload: TemplateImport,
    user: ApiUser,
    session: SessionDep,
    user_group_id: Id | None = None,
) -> TemplateRead:
    await check_group_member(session, user, user_group_id)
    _refuse_empty(payload.data.task_list, "the imported template's data")
    assert user.id is not None
    template = WorkflowTemplate(
        user_id=user.id,
        user_group_id=user_group_id,
        name=payload.name,
        version=payload.version,
        description=payload.description,
        data=payload.data.model_dump(mode="json", exclude_none=True),
    )
    return await _store(session, template)


@router.get("/{template_id}/", response_model=TemplateRead)
async def get_template(template_id: Id, user: ApiUser, session: SessionDep) -> TemplateRead:
    return await _read(session, await template_for_use(session, user, template_id))


@router.get("/{template_id}/export/", response_model=TemplateImport)
async def export_template(template_id: Id, user: ApiUser, session: SessionDep) -> dict:
    template = await template_for_use(session, user, template_id)
    return {
        "name": template.name,
        "version": template.version,
        "description": template.description,
        "data": template.data,
    }


@router.patch("/{template_id}/", response_model=TemplateRead)
async def update_template(
    template_id: Id, payload: TemplateUpdate, user: ApiUser, session: SessionDep
) -> TemplateRead:
    template = await template_owned(session, user, template_id)
    changes = payload.model_dump(exclude_unset=True)
    if "user_group_id" in changes:
        await check_group_member(session, user, changes["user_group_id"])
    for key, value in changes.items():
        setattr(template, key, value)
    await session.commit()
    return await _read(session, template)


@router.delete("/{template_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_template(template_id: Id, user: ApiUser, session: SessionDep) -> Response:
    template = await template_owned(session, user, template_id)
    await session.delete(template)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
