"""Workflows of a project and their tasks, under /api/v2/project/{project_id}/workflow/."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from sqlmodel import col, func, select

from ...models import Workflow, WorkflowTask
from ...schemas._base import Id
from ...schemas.workflow import (
    ImportFromTemplate,
    WorkflowCreate,
    WorkflowExport,
    WorkflowImport,
    WorkflowRead,
    WorkflowTaskCreate,
    WorkflowTaskRead,
    WorkflowTaskUpdate,
    WorkflowUpdate,
)
from ...services import workflows as service
from ...services.access import Need, child_of_project, project_for
from ...services.projects import active_jobs
from ...services.templates import template_for_use
from ..deps import SessionDep
from ..errors import unprocessable_from
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(
    prefix="/api/v2/project/{project_id}/workflow", tags=["workflows"], route_class=GuardedRoute
)


async def _name_free(
    session: SessionDep, project_id: Id, name: str, exclude: int | None = None
) -> None:
    query = (
        select(func.count())
        .select_from(Workflow)
        .where(Workflow.project_id == project_id, Workflow.name == name)
    )
    if exclude is not None:
        query = query.where(Workflow.id != exclude)
    if (await session.exec(query)).one():
        raise HTTPException(
            422, detail=f"project {project_id} already has a workflow named {name!r}"
        )


def _import_failed(error: service.ImportMatchError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": "[HAS_ERROR_DATA]", "data": error.data})


@router.get("/", response_model=list[WorkflowRead])
async def list_workflows(project_id: Id, user: ApiUser, session: SessionDep) -> list[WorkflowRead]:
    project, link = await project_for(session, user, project_id)
    query = select(Workflow).where(Workflow.project_id == project_id).order_by(col(Workflow.id))
    return [
        await service.workflow_read(session, wf, project, link)
        for wf in (await session.exec(query)).all()
    ]


@router.post("/", response_model=WorkflowRead, status_code=status.HTTP_201_CREATED)
async def create_workflow(
    project_id: Id, payload: WorkflowCreate, user: ApiUser, session: SessionDep
) -> WorkflowRead:
    project, link = await project_for(session, user, project_id, Need.WRITE)
    await _name_free(session, project_id, payload.name)
    workflow = Workflow(project_id=project_id, **payload.model_dump())
    session.add(workflow)
    await session.commit()
    return await service.workflow_read(session, workflow, project, link)


@router.post("/import/", response_model=WorkflowRead, status_code=status.HTTP_201_CREATED)
async def import_workflow(
    request: Request, project_id: Id, payload: WorkflowImport, user: ApiUser, session: SessionDep
) -> WorkflowRead | JSONResponse:
    project, link = await project_for(session, user, project_id, Need.WRITE)
    await _name_free(session, project_id, payload.name)
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
    request: Request,
    project_id: Id,
    template_id: Id,
    user: ApiUser,
    session: SessionDep,
    payload: Annotated[ImportFromTemplate | None, Body()] = None,
) -> WorkflowRead | JSONResponse:
    project, link = await project_for(session, user, project_id, Need.WRITE)
    template = await template_for_use(session, user, template_id)
    data = dict(template.data)
    if payload is not None and payload.name:
        data["name"] = payload.name
    if payload is not None and payload.description is not None:
        data["description"] = payload.description
    try:
        to_import = WorkflowImport.model_validate(data)
    except ValueError as error:
        raise unprocessable_from(error)  # type: ignore[arg-type]
    await _name_free(session, project_id, to_import.name)
    try:
        workflow = await service.import_workflow(
            session, user, project_id, to_import, request.app.state.settings.DEFAULT_GROUP_NAME
        )
    except service.ImportMatchError as error:
        await session.rollback()
        return _import_failed(error)
    workflow.template_id = template.id
    await session.commit()
    return await service.workflow_read(session, workflow, project, link)


async def _workflow(session: SessionDep, project_id: Id, workflow_id: Id) -> Workflow:
    return await child_of_project(session, Workflow, workflow_id, project_id, "workflow")


@router.get("/{workflow_id}/", response_model=WorkflowRead)
async def get_workflow(
    project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> WorkflowRead:
    project, link = await project_for(session, user, project_id)
    return await service.workflow_read(
        session, await _workflow(session, project_id, workflow_id), project, link
    )


@router.patch("/{workflow_id}/", response_model=WorkflowRead)
async def update_workflow(
    project_id: Id, workflow_id: Id, payload: WorkflowUpdate, user: ApiUser, session: SessionDep
) -> WorkflowRead:
    project, link = await project_for(session, user, project_id, Need.WRITE)
    workflow = await _workflow(session, project_id, workflow_id)
    changes = payload.model_dump(exclude_unset=True)
    order = changes.pop("reordered_workflowtask_ids", None)
    if order is not None:
        await service.reorder(session, workflow_id, order)
    if changes.get("name") is not None:
        await _name_free(session, project_id, changes["name"], exclude=workflow_id)
    for key, value in changes.items():
        if value is None and key in ("name", "is_starred"):
            raise HTTPException(422, detail=f"{key} cannot be null")
        setattr(workflow, key, value)
    await session.commit()
    return await service.workflow_read(session, workflow, project, link)


@router.delete("/{workflow_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workflow(
    project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    await project_for(session, user, project_id, Need.WRITE)
    workflow = await _workflow(session, project_id, workflow_id)
    running = await active_jobs(session, workflow_id=workflow_id)
    if running:
        raise HTTPException(
            422, detail=f"workflow {workflow_id} is used by {running} active job(s)"
        )
    await session.delete(workflow)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{workflow_id}/export/", response_model=WorkflowExport)
async def export_workflow(
    project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> WorkflowExport:
    await project_for(session, user, project_id)
    return await service.export(session, await _workflow(session, project_id, workflow_id))


@router.post(
    "/{workflow_id}/wftask/",
    response_model=list[WorkflowTaskRead],
    status_code=status.HTTP_201_CREATED,
)
async def add_workflow_tasks(
    project_id: Id,
    workflow_id: Id,
    payload: Annotated[list[WorkflowTaskCreate], Body(min_length=1, max_length=100)],
    user: ApiUser,
    session: SessionDep,
) -> list[WorkflowTaskRead]:
    await project_for(session, user, project_id, Need.WRITE)
    workflow = await _workflow(session, project_id, workflow_id)
    created = await service.add_tasks(session, user, workflow, payload)
    await session.commit()
    return [service.wftask_read(wftask, task) for wftask, task in created]


async def _wftask(session: SessionDep, workflow_id: Id, wftask_id: Id) -> WorkflowTask:
    wftask = await session.get(WorkflowTask, wftask_id)
    if wftask is None or wftask.workflow_id != workflow_id:
        raise HTTPException(
            404, detail=f"workflow task {wftask_id} not found in workflow {workflow_id}"
        )
    return wftask


@router.patch("/{workflow_id}/wftask/{wftask_id}/", response_model=WorkflowTaskRead)
async def update_workflow_task(
    project_id: Id,
    workflow_id: Id,
    wftask_id: Id,
    payload: WorkflowTaskUpdate,
    user: ApiUser,
    session: SessionDep,
) -> WorkflowTaskRead:
    await project_for(session, user, project_id, Need.WRITE)
    await _workflow(session, project_id, workflow_id)
    wftask = await _wftask(session, workflow_id, wftask_id)
    task, group = await _task_of(session, wftask)
    changes = payload.model_dump(exclude_unset=True)
    if changes.get("type_filters") is not None:
        service.check_type_filters(task, changes["type_filters"])
    # Arguments only make sense for the parts a task type has.
    if (
        "args_parallel" in changes
        and task.type in ("non_parallel", "converter_non_parallel")
        and changes["args_parallel"]
    ):
        raise HTTPException(422, detail=f"a {task.type} task takes no args_parallel")
    if "args_non_parallel" in changes and task.type == "parallel" and changes["args_non_parallel"]:
        raise HTTPException(422, detail="a parallel task takes no args_non_parallel")
    for key, value in changes.items():
        if key == "type_filters" and value is None:
            value = {}
        setattr(wftask, key, value)
    await session.commit()
    await session.refresh(wftask)
    return service.wftask_read(wftask, task, group)


async def _task_of(session: SessionDep, wftask: WorkflowTask):
    from ...models import Task, TaskGroup

    task = await session.get(Task, wftask.task_id)
    assert task is not None
    return task, await session.get(TaskGroup, task.taskgroupv2_id)


@router.delete("/{workflow_id}/wftask/{wftask_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workflow_task(
    project_id: Id, workflow_id: Id, wftask_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    await project_for(session, user, project_id, Need.WRITE)
    await _workflow(session, project_id, workflow_id)
    running = await active_jobs(session, workflow_id=workflow_id)
    if running:
        raise HTTPException(
            422, detail=f"workflow {workflow_id} is used by {running} active job(s)"
        )
    wftask = await _wftask(session, workflow_id, wftask_id)
    await session.delete(wftask)
    await session.flush()
    await service.renumber(session, workflow_id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
