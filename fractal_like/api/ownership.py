"""Who may touch what, declared once as FastAPI dependencies.

A route names what it works on (`ReadProject`, `WriteDataset`, `ExecuteProject`,
`ReadJob`...) and receives it only when the current user's link to the project allows
that access: 404 when the project or the object does not exist, 403 when the user's
link does not allow it, 422 when the object belongs to another project (Fractal's
answers). The checks themselves live in `services.access`.

Each dependency is built once, so FastAPI's per-request cache runs the project check a
single time even when a route asks for the project and one of its objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, NamedTuple

from fastapi import Depends

from ..models import Dataset, Job, LinkUserProject, Project, Workflow, WorkflowTask
from ..schemas._base import Id
from ..services.access import (
    Need,
    check_may_unlink,
    check_owner,
    child_of_project,
    dataset_and_wftask,
    job_of_project,
    project_for,
    wftask_of_workflow,
)
from .deps import SessionDep
from .users import ApiUser


class ProjectAccess(NamedTuple):
    """A project and the current user's link to it (their permissions, ownership)."""

    project: Project
    link: LinkUserProject

    @property
    def id(self) -> int:
        assert self.project.id is not None
        return self.project.id


def _project_dependency(need: Need) -> Callable[..., Awaitable[ProjectAccess]]:
    async def project_access(project_id: Id, user: ApiUser, session: SessionDep) -> ProjectAccess:
        return ProjectAccess(*await project_for(session, user, project_id, need))

    return project_access


_PROJECT = {need: _project_dependency(need) for need in Need}

ReadProject = Annotated[ProjectAccess, Depends(_PROJECT[Need.READ])]
WriteProject = Annotated[ProjectAccess, Depends(_PROJECT[Need.WRITE])]
ExecuteProject = Annotated[ProjectAccess, Depends(_PROJECT[Need.EXECUTE])]


def _owner_dependency(need: Need, doing: str) -> Callable[..., Awaitable[ProjectAccess]]:
    async def owner_access(access: ProjectAccess = Depends(_PROJECT[need])) -> ProjectAccess:
        check_owner(access.link, doing)
        return access

    return owner_access


# Sharing and deleting are the owner's alone (403 for everyone else).
OwnProject = Annotated[
    ProjectAccess, Depends(_owner_dependency(Need.READ, "manages who can use a project"))
]
DeleteProject = Annotated[
    ProjectAccess, Depends(_owner_dependency(Need.WRITE, "can delete a project"))
]


async def _unlink_access(
    user_id: Id, access: ProjectAccess = Depends(_PROJECT[Need.READ])
) -> ProjectAccess:
    check_may_unlink(access.link, user_id)
    return access


# Removing the access of member `user_id`: the owner removes anyone, a guest only themselves.
UnlinkMember = Annotated[ProjectAccess, Depends(_unlink_access)]


def _dataset_dependency(need: Need) -> Callable[..., Awaitable[Dataset]]:
    async def dataset_access(
        dataset_id: Id, session: SessionDep, access: ProjectAccess = Depends(_PROJECT[need])
    ) -> Dataset:
        return await child_of_project(session, Dataset, dataset_id, access.id, "dataset")

    return dataset_access


def _workflow_dependency(need: Need) -> Callable[..., Awaitable[Workflow]]:
    async def workflow_access(
        workflow_id: Id, session: SessionDep, access: ProjectAccess = Depends(_PROJECT[need])
    ) -> Workflow:
        return await child_of_project(session, Workflow, workflow_id, access.id, "workflow")

    return workflow_access


_DATASET = {need: _dataset_dependency(need) for need in Need}
_WORKFLOW = {need: _workflow_dependency(need) for need in Need}

ReadDataset = Annotated[Dataset, Depends(_DATASET[Need.READ])]
WriteDataset = Annotated[Dataset, Depends(_DATASET[Need.WRITE])]
ReadWorkflow = Annotated[Workflow, Depends(_WORKFLOW[Need.READ])]
WriteWorkflow = Annotated[Workflow, Depends(_WORKFLOW[Need.WRITE])]
# Submitting a job needs the project's execute permission, checked before its objects.
ExecuteDataset = Annotated[Dataset, Depends(_DATASET[Need.EXECUTE])]
ExecuteWorkflow = Annotated[Workflow, Depends(_WORKFLOW[Need.EXECUTE])]


def _wftask_dependency(need: Need) -> Callable[..., Awaitable[WorkflowTask]]:
    async def wftask_access(
        workflow_task_id: Id,
        session: SessionDep,
        workflow: Workflow = Depends(_WORKFLOW[need]),
    ) -> WorkflowTask:
        assert workflow.id is not None
        return await wftask_of_workflow(session, workflow_task_id, workflow.id)

    return wftask_access


_WFTASK = {need: _wftask_dependency(need) for need in Need}

ReadWorkflowTask = Annotated[WorkflowTask, Depends(_WFTASK[Need.READ])]
WriteWorkflowTask = Annotated[WorkflowTask, Depends(_WFTASK[Need.WRITE])]


def _job_dependency(need: Need) -> Callable[..., Awaitable[Job]]:
    async def job_access(
        job_id: Id, session: SessionDep, access: ProjectAccess = Depends(_PROJECT[need])
    ) -> Job:
        return await job_of_project(session, job_id, access.id)

    return job_access


_JOB = {need: _job_dependency(need) for need in Need}

ReadJob = Annotated[Job, Depends(_JOB[Need.READ])]
ExecuteJob = Annotated[Job, Depends(_JOB[Need.EXECUTE])]


class DatasetTask(NamedTuple):
    """The dataset and workflow task a provenance route is about (ids in the query)."""

    dataset: Dataset
    wftask: WorkflowTask


async def _dataset_task(
    project_id: Id, dataset_id: Id, workflowtask_id: Id, user: ApiUser, session: SessionDep
) -> DatasetTask:
    # The same helper checks ids that come in a request body (history's image-log).
    return DatasetTask(
        *await dataset_and_wftask(session, user, project_id, dataset_id, workflowtask_id)
    )


ReadDatasetTask = Annotated[DatasetTask, Depends(_dataset_task)]
