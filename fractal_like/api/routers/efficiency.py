"""Job efficiency (ours): seff's figures per job and per workflow task, a per-task
suggestion of SLURM requests, and CPU-hours per user or account for superusers."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import AwareDatetime

from ...models import Job, Workflow, WorkflowTask
from ...schemas._base import Id
from ...schemas.efficiency import (
    JobEfficiencyRead,
    SlurmSuggestionRead,
    UsageTotalRead,
    WorkflowTaskEfficiencyRead,
)
from ...services import efficiency as service
from ...services.access import child_of_project, project_for, row_or_404
from ...services.tasks import task_for
from ..deps import SessionDep
from ..query_params import utc_bound
from ..request_body import GuardedRoute
from ..users import ApiUser, Superuser

router = APIRouter(prefix="/api/v2", tags=["efficiency"], route_class=GuardedRoute)
admin_router = APIRouter(prefix="/admin/v2/accounting", tags=["admin"], route_class=GuardedRoute)
GroupBy = Literal["user", "account"]


@router.get("/project/{project_id}/job/{job_id}/efficiency/", response_model=JobEfficiencyRead)
async def job_efficiency(
    project_id: Id, job_id: Id, user: ApiUser, session: SessionDep
) -> JobEfficiencyRead:
    await project_for(session, user, project_id)
    job = await row_or_404(session, Job, job_id, "job")
    if job.project_id != project_id:
        raise HTTPException(404, detail=f"job {job_id} not found in project {project_id}")
    return await service.job_efficiency(session, job_id)


@router.get(
    "/project/{project_id}/workflow/{workflow_id}/wftask/{workflow_task_id}/efficiency/",
    response_model=WorkflowTaskEfficiencyRead,
)
async def workflow_task_efficiency(
    project_id: Id, workflow_id: Id, workflow_task_id: Id, user: ApiUser, session: SessionDep
) -> WorkflowTaskEfficiencyRead:
    await project_for(session, user, project_id)
    await child_of_project(session, Workflow, workflow_id, project_id, "workflow")
    wftask = await row_or_404(session, WorkflowTask, workflow_task_id, "workflow task")
    if wftask.workflow_id != workflow_id:
        raise HTTPException(
            404, detail=f"workflow task {workflow_task_id} not found in workflow {workflow_id}"
        )
    return await service.workflow_task_efficiency(session, workflow_task_id)


@router.get("/task/{task_id}/slurm-suggestion/", response_model=SlurmSuggestionRead)
async def slurm_suggestion(task_id: Id, user: ApiUser, session: SessionDep) -> SlurmSuggestionRead:
    """mem, cpus_per_task and time per unit for this task, from your own measured runs."""
    await task_for(session, user, task_id)
    assert user.id is not None
    return await service.slurm_suggestion(session, task_id, user.id)


@admin_router.get(
    "/usage/",
    response_model=list[UsageTotalRead],
    responses={200: {"content": {"text/csv": {}}}},
)
async def usage_totals(
    _admin: Superuser,
    session: SessionDep,
    group_by: GroupBy = "user",
    timestamp_min: AwareDatetime | None = None,
    timestamp_max: AwareDatetime | None = None,
    format: Literal["json", "csv"] = "json",
) -> list[UsageTotalRead] | Response:
    """CPU-hours of the SLURM jobs that ended in the period, per user or per account."""
    totals = await service.usage_totals(
        session,
        group_by,
        utc_bound(timestamp_min, "timestamp_min"),
        utc_bound(timestamp_max, "timestamp_max"),
    )
    if format == "csv":
        return Response(
            service.usage_csv(totals, group_by),
            media_type="text/csv",
            headers={"Content-Disposition": "attachment; filename=usage.csv"},
        )
    return totals
