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

from ..models import (
    Dataset,
    Job,
    LinkUserProject,
    Project,
    TaskGroupActivity,
    UserOAuth,
    Workflow,
    WorkflowTask,
)
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
    check_need(link, need)
    return project, link


def check_need(link: LinkUserProject, need: Need) -> None:
    """403 unless the user's link to its project allows `need`."""
    if need.value not in link.permissions:
        raise ForbiddenError(
            f"your access to project {link.project_id} is {link.permissions!r}, "
            f"which does not allow this ({need.value!r} needed)",
        )


def check_owner(link: LinkUserProject, doing: str = "manages who can use a project") -> None:
    """403 unless the user owns the project: deleting and sharing are the owner's alone."""
    if not link.is_owner:
        raise ForbiddenError(f"only the owner {doing}")


def check_may_unlink(link: LinkUserProject, member_id: int) -> None:
    """A member may leave on their own; removing anyone else is the owner's (403)."""
    if member_id != link.user_id:
        check_owner(link)


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


async def wftask_of_project(
    session: AsyncSession, workflowtask_id: int, project_id: int, workflow_id: int | None = None
) -> WorkflowTask:
    """A workflow task of a workflow of this project (and of `workflow_id` when given);
    404 if missing, 422 if elsewhere."""
    row = (
        await session.exec(
            select(WorkflowTask, Workflow.project_id)
            .join(Workflow, col(Workflow.id) == WorkflowTask.workflow_id)
            .where(WorkflowTask.id == workflowtask_id)
        )
    ).first()
    if row is None:
        raise NotFoundError(f"workflow task {workflowtask_id} not found")
    wftask, owner = row
    if owner != project_id:
        raise InvalidError(f"workflow task {workflowtask_id} is not part of project {project_id}")
    if workflow_id is not None and wftask.workflow_id != workflow_id:
        raise InvalidError(f"workflow task {workflowtask_id} is not part of workflow {workflow_id}")
    return wftask


async def dataset_and_wftask(
    session: AsyncSession,
    user: UserOAuth,
    project_id: int,
    dataset_id: int,
    workflowtask_id: int,
) -> tuple[Dataset, WorkflowTask]:
    """A dataset and a workflow task named by id (in a query or a request body) that the
    user may read, both of the project: the answers of `project_for`, `child_of_project`
    and `wftask_of_project`, in that order."""
    await project_for(session, user, project_id)
    dataset = await child_of_project(session, Dataset, dataset_id, project_id, "dataset")
    return dataset, await wftask_of_project(session, workflowtask_id, project_id)


async def readable_workflow(session: AsyncSession, user: UserOAuth, workflow_id: int) -> Workflow:
    """A workflow named without its project: 404 if missing, then the project's answers."""
    workflow = await get_or_404(session, Workflow, workflow_id, "workflow")
    await project_for(session, user, workflow.project_id)
    return workflow


async def own_activity(
    session: AsyncSession, user: UserOAuth, activity_id: int
) -> TaskGroupActivity:
    """A task-group activity of the user's own; admins read others' through the admin routes."""
    activity = await get_or_404(session, TaskGroupActivity, activity_id, "task-group activity")
    if activity.user_id != user.id:
        raise ForbiddenError(f"task-group activity {activity_id} is not yours")
    return activity
