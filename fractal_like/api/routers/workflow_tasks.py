"""The tasks of a workflow, under /api/v2/project/{project_id}/workflow/{workflow_id}/.

Adding, reading, editing, removing and replacing workflow tasks, and two per-task views of
a workflow: the type filters in effect around each task, and the newer versions each task
may move to.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status

from ...schemas._base import MAX_INT, Id
from ...schemas.workflow import (
    MAX_WORKFLOW_TASKS,
    TaskVersionRead,
    WorkflowTaskCreate,
    WorkflowTaskRead,
    WorkflowTaskReplace,
    WorkflowTaskUpdate,
)
from ...services import task_versions
from ...services import workflows as service
from ...services.errors import InvalidError
from ...services.projects import active_jobs
from ..deps import SessionDep
from ..ownership import ReadWorkflow, ReadWorkflowTask, WriteWorkflow, WriteWorkflowTask
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(
    prefix="/api/v2/project/{project_id}/workflow/{workflow_id}",
    tags=["workflows"],
    route_class=GuardedRoute,
)


async def _refuse_while_running(session: SessionDep, workflow_id: int, what: str) -> None:
    running = await active_jobs(session, workflow_id=workflow_id)
    if running:
        raise InvalidError(
            f"cannot {what} while workflow {workflow_id} has {running} active job(s)"
        )


@router.post("/wftask/", response_model=list[WorkflowTaskRead], status_code=status.HTTP_201_CREATED)
async def add_workflow_tasks(
    workflow: WriteWorkflow,
    project_id: Id,
    workflow_id: Id,
    payload: Annotated[list[WorkflowTaskCreate], Body(min_length=1, max_length=100)],
    user: ApiUser,
    session: SessionDep,
    order: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
) -> list[WorkflowTaskRead]:
    """Insert the tasks at position `order` (default: the end)."""
    assert workflow.id is not None
    count = len(await service.workflow_tasks(session, workflow.id))
    if count + len(payload) > MAX_WORKFLOW_TASKS:
        raise InvalidError(f"a workflow has at most {MAX_WORKFLOW_TASKS} tasks")
    # A running job reads the tasks by position: only appending is safe then.
    if order is not None and order < count:
        await _refuse_while_running(session, workflow.id, "insert a task before others")
    created = await service.add_tasks(session, user, workflow, payload, order)
    await session.commit()
    return [service.wftask_read(wftask, task) for wftask, task in created]


@router.post(
    "/wftask/replace-task/",
    response_model=WorkflowTaskRead,
    status_code=status.HTTP_201_CREATED,
)
async def replace_workflow_task(
    wftask: WriteWorkflowTask,
    project_id: Id,
    workflow_id: Id,
    workflow_task_id: Id,
    task_id: Id,
    payload: WorkflowTaskReplace,
    user: ApiUser,
    session: SessionDep,
) -> WorkflowTaskRead:
    """Move a workflow task to another task (typically a newer version of its package)."""
    old_task, _group = await service.task_of(session, wftask)
    new_task = await task_versions.replace_task(session, user, wftask, old_task, task_id, payload)
    await session.commit()
    await session.refresh(wftask)
    return service.wftask_read(wftask, new_task)


@router.get("/wftask/{workflow_task_id}/", response_model=WorkflowTaskRead)
async def get_workflow_task(
    wftask: ReadWorkflowTask,
    project_id: Id,
    workflow_id: Id,
    workflow_task_id: Id,
    user: ApiUser,
    session: SessionDep,
) -> WorkflowTaskRead:
    return service.wftask_read(wftask, *await service.task_of(session, wftask))


@router.patch("/wftask/{workflow_task_id}/", response_model=WorkflowTaskRead)
async def update_workflow_task(
    wftask: WriteWorkflowTask,
    project_id: Id,
    workflow_id: Id,
    workflow_task_id: Id,
    payload: WorkflowTaskUpdate,
    user: ApiUser,
    session: SessionDep,
) -> WorkflowTaskRead:
    task, group = await service.task_of(session, wftask)
    service.update_wftask(wftask, task, payload.model_dump(exclude_unset=True))
    await session.commit()
    await session.refresh(wftask)
    return service.wftask_read(wftask, task, group)


@router.delete("/wftask/{workflow_task_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workflow_task(
    wftask: WriteWorkflowTask,
    project_id: Id,
    workflow_id: Id,
    workflow_task_id: Id,
    user: ApiUser,
    session: SessionDep,
) -> Response:
    await _refuse_while_running(session, workflow_id, "remove a task")
    await session.delete(wftask)
    await session.flush()
    await service.renumber(session, workflow_id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/type-filters-flow/", response_model=list[dict[str, Any]])
async def type_filters_flow(
    _workflow: ReadWorkflow, project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> list[dict[str, Any]]:
    """Per workflow task: the types set before it, the filters it reads with, what it sets."""
    rows = await service.workflow_tasks(session, workflow_id)
    if not rows:
        raise InvalidError(f"workflow {workflow_id} has no tasks")
    return service.type_filters_flow(rows)


@router.get("/version-update-candidates/", response_model=list[list[TaskVersionRead]])
async def version_update_candidates(
    _workflow: ReadWorkflow, project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> list[list[TaskVersionRead]]:
    """Per workflow task, in order: the newer versions of its task it may move to."""
    rows = await service.workflow_tasks(session, workflow_id)
    return await task_versions.update_candidates(session, user, rows)
