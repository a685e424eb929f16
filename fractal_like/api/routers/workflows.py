"""Workflows of a project and their tasks, under /api/v2/project/{project_id}/workflow/."""

from __future__ import annotations

import copy
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ...models import Workflow
from ...models._types import utc_now
from ...schemas._base import Id
from ...schemas.workflow import (
    ImportFromTemplate,
    WorkflowCreate,
    WorkflowExport,
    WorkflowImport,
    WorkflowRead,
    WorkflowUpdate,
)
from ...services import workflows as service
from ...services.errors import InvalidError
from ...services.projects import active_jobs
from ...services.templates import template_for_use
from ..deps import SessionDep
from ..errors import unprocessable_from
from ..ownership import ReadProject, ReadWorkflow, WriteProject, WriteWorkflow
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(
    prefix="/api/v2/project/{project_id}/workflow", tags=["workflows"], route_class=GuardedRoute
)


def _import_failed(error: service.ImportMatchError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": "[HAS_ERROR_DATA]", "data": error.data})


@router.get("/", response_model=list[WorkflowRead])
async def list_workflows(
    access: ReadProject, project_id: Id, user: ApiUser, session: SessionDep
) -> list[WorkflowRead]:
    project, link = access
    return [
        await service.workflow_read(session, wf, project, link)
        for wf in await service.project_workflows(session, project_id)
    ]


@router.post("/", response_model=WorkflowRead, status_code=status.HTTP_201_CREATED)
async def create_workflow(
    access: WriteProject,
    project_id: Id,
    payload: WorkflowCreate,
    user: ApiUser,
    session: SessionDep,
) -> WorkflowRead:
    project, link = access
    await service.check_name_free(session, project_id, payload.name)
    workflow = Workflow(project_id=project_id, **payload.model_dump())
    session.add(workflow)
    await session.commit()
    return await service.workflow_read(session, workflow, project, link)


@router.post("/import/", response_model=WorkflowRead, status_code=status.HTTP_201_CREATED)
async def import_workflow(
    access: WriteProject,
    request: Request,
    project_id: Id,
    payload: WorkflowImport,
    user: ApiUser,
    session: SessionDep,
) -> WorkflowRead | JSONResponse:
    project, link = access
    await service.check_name_free(session, project_id, payload.name)
    try:
        workflow = await service.import_workflow(
            session, user, project_id, payload, request.app.state.settings.DEFAULT_GROUP_NAME
        )
    except service.ImportMatchError as error:
        await session.rollback()
        return _import_failed(error)
    await session.commit()
    return await service.workflow_read(session, workflow, project, link)


@router.post(
    "/import-from-template/", response_model=WorkflowRead, status_code=status.HTTP_201_CREATED
)
async def import_from_template(
    access: WriteProject,
    request: Request,
    project_id: Id,
    template_id: Id,
    user: ApiUser,
    session: SessionDep,
    payload: Annotated[ImportFromTemplate | None, Body()] = None,
) -> WorkflowRead | JSONResponse:
    project, link = access
    template = await template_for_use(session, user, template_id)
    payload = payload or ImportFromTemplate()
    data = copy.deepcopy(template.data)
    if payload.name:
        data["name"] = payload.name
    if payload.description is not None:
        data["description"] = payload.description
    task_list = data.get("task_list") or []
    for position, version in payload.override_versions.items():
        if position >= len(task_list):
            raise InvalidError(
                f"override_versions names task {position}, but the template has "
                f"{len(task_list)} task(s)"
            )
        task_list[position]["task"]["version"] = version
    try:
        to_import = WorkflowImport.model_validate(data)
    except ValidationError as error:
        raise unprocessable_from(error) from None
    await service.check_name_free(session, project_id, to_import.name)
    try:
        workflow = await service.import_workflow(
            session, user, project_id, to_import, request.app.state.settings.DEFAULT_GROUP_NAME
        )
    except service.ImportMatchError as error:
        await session.rollback()
        return _import_failed(error)
    workflow.template_id = template.id
    template.timestamp_last_used = utc_now()
    await session.commit()
    return await service.workflow_read(session, workflow, project, link)


@router.get("/{workflow_id}/", response_model=WorkflowRead)
async def get_workflow(
    access: ReadProject,
    workflow: ReadWorkflow,
    project_id: Id,
    workflow_id: Id,
    user: ApiUser,
    session: SessionDep,
) -> WorkflowRead:
    project, link = access
    return await service.workflow_read(session, workflow, project, link)


@router.patch("/{workflow_id}/", response_model=WorkflowRead)
async def update_workflow(
    access: WriteProject,
    workflow: WriteWorkflow,
    project_id: Id,
    workflow_id: Id,
    payload: WorkflowUpdate,
    user: ApiUser,
    session: SessionDep,
) -> WorkflowRead:
    project, link = access
    changes = payload.model_dump(exclude_unset=True)
    order = changes.pop("reordered_workflowtask_ids", None)
    if order is not None:
        await service.reorder(session, workflow_id, order)
    if changes.get("name") is not None:
        await service.check_name_free(session, project_id, changes["name"], exclude=workflow_id)
    for key, value in changes.items():
        if value is None and key in ("name", "is_starred"):
            raise InvalidError(f"{key} cannot be null")
        setattr(workflow, key, value)
    await session.commit()
    return await service.workflow_read(session, workflow, project, link)


@router.delete("/{workflow_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workflow(
    workflow: WriteWorkflow, project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    running = await active_jobs(session, workflow_id=workflow_id)
    if running:
        raise InvalidError(f"workflow {workflow_id} is used by {running} active job(s)")
    await session.delete(workflow)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{workflow_id}/export/", response_model=WorkflowExport)
async def export_workflow(
    workflow: ReadWorkflow, project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> WorkflowExport:
    return await service.export(session, workflow)
