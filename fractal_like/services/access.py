"""Who may read or change what: ownership checks live here, and only here.

Every project-scoped object (dataset, workflow, job) is reached through its project,
so a route asks `project_for(user, project_id, need)` once and then loads the child
with `child_of_project(...)`, which refuses objects of other projects.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Job, LinkUserProject, Project, UserOAuth, WorkflowTask
from .errors import ForbiddenError, InvalidError, NotFoundError

T = TypeVar("T", bound=SQLModel)


class Need(StrEnum):
    READ = "r"
    WRITE = "w"
    EXECUTE = "x"


def readable_projects(user_id: int):
    """A query of the projects a user may read (owned or shared with them)."""
    return (
        select(Project, LinkUserProject)
        .join(LinkUserProject, col(LinkUserProject.project_id) == Project.id)
        .where(LinkUserProject.user_id == user_id, col(LinkUserProject.is_verified).is_(True))
    )


async def project_for(
    session: AsyncSession, user: UserOAuth, project_id: int, need: Need = Need.READ
) -> tuple[Project, LinkUserProject]:
    """The project and the user's link to it; 404 if it does not exist, 403 if not theirs."""
    project = await session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"project {project_id} not found")
    assert user.id is not None
    link = await session.get(LinkUserProject, (project_id, user.id))
    if link is None or not link.is_verified:
        raise ForbiddenError(f"you have no access to project {project_id}")
    if need.value not in link.permissions:
        raise ForbiddenError(
            f"your access to project {project_id} is {link.permissions!r}, "
            f"which does not allow this ({need.value!r} needed)",
        )
    return project, link


async def get_or_404(session: AsyncSession, model: type[T], object_id: int, what: str) -> T:
    """The row of `model` with that id; 404 naming `what` when there is none."""
    obj = await session.get(model, object_id)
    if obj is None:
        raise NotFoundError(f"{what} {object_id} not found")
    return obj


async def child_of_project(
    session: AsyncSession, model: type[T], object_id: int, project_id: int, what: str
) -> T:
    """An object that must belong to the given project; 404 otherwise."""
    obj = await get_or_404(session, model, object_id, what)
    if getattr(obj, "project_id", None) != project_id:
        raise InvalidError(f"{what} {object_id} is not part of project {project_id}")
    return obj


async def user_or_404(session: AsyncSession, user_id: int) -> UserOAuth:
    return await get_or_404(session, UserOAuth, user_id, "user")


async def job_of_project(session: AsyncSession, job_id: int, project_id: int) -> Job:
    """A job of that project; 404 otherwise (a job of another project is not revealed)."""
    job = await session.get(Job, job_id)
    if job is None or job.project_id != project_id:
        raise NotFoundError(f"job {job_id} not found in project {project_id}")
    return job


async def wftask_of_workflow(
    session: AsyncSession, workflow_task_id: int, workflow_id: int
) -> WorkflowTask:
    """A workflow task of that workflow; 404 otherwise."""
    wftask = await session.get(WorkflowTask, workflow_task_id)
    if wftask is None or wftask.workflow_id != workflow_id:
        raise NotFoundError(f"workflow task {workflow_task_id} not found in workflow {workflow_id}")
    return wftask
