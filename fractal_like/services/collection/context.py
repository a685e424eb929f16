"""What a piece of background work knows about its activity, and shared look-ups."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from ...models import (
    ACTIVE_JOB_STATUSES,
    Job,
    LinkUserProject,
    Profile,
    Resource,
    Task,
    TaskGroup,
    TaskGroupActivity,
    UserOAuth,
    Workflow,
    WorkflowTask,
)
from ...runner.slurm.ssh_host import SshHostRegistry
from .log import ActivityLog
from .place import LocalPlace, Place, StepFailedError
from .ssh_place import SshPlace


@dataclass
class ActivityRun:
    engine: AsyncEngine
    factory: async_sessionmaker[AsyncSession]
    activity_id: int
    action: str
    user_id: int
    group_id: int | None
    log: ActivityLog
    # The server's files that pip and the build scripts it runs must not reach (None: not
    # confined; see runner/node/sandbox.py).
    private_paths: list[str] | None = None
    # The runner's SSH connections, for task groups on slurm_ssh login nodes.
    ssh: SshHostRegistry | None = None
    # Set once the work changed files in a way that cannot simply be undone by a retry
    # (e.g. a venv half removed), or found a folder that is not ours to remove.
    touched: bool = False
    keep_folder: bool = False


@dataclass(frozen=True)
class GroupView:
    """A detached copy of what the work needs from a task group and its resource."""

    group: TaskGroup
    resource: Resource
    profile: Profile | None  # the owner's: on slurm_ssh, whose login holds the files


async def load(run: ActivityRun) -> GroupView:
    async with run.factory() as session:
        group = await session.get(TaskGroup, run.group_id) if run.group_id else None
        if group is None:
            raise StepFailedError(f"task group {run.group_id} no longer exists")
        resource = await session.get(Resource, group.resource_id) if group.resource_id else None
        if resource is None:
            raise StepFailedError(
                f"task group {group.id} has no compute resource any more (it was removed)"
            )
        profile = await owner_profile(session, group)
        session.expunge_all()
        return GroupView(group, resource, profile)


async def owner_profile(session: AsyncSession, group: TaskGroup) -> Profile | None:
    """The profile of the group's owner, when it is on the group's resource."""
    owner = await session.get(UserOAuth, group.user_id)
    profile = await session.get(Profile, owner.profile_id) if owner and owner.profile_id else None
    return profile if profile is not None and profile.resource_id == group.resource_id else None


def place_for(
    resource: Resource,
    profile: Profile | None,
    ssh: SshHostRegistry | None,
    confine: list[str] | None,
) -> Place:
    """Where a task group of this resource lives: this machine, or (slurm_ssh) the login
    node as the profile's user; ValueError says what is missing to reach it."""
    if resource.type != "slurm_ssh":
        return LocalPlace(resource.tasks_local_dir, confine)
    if profile is None:
        raise ValueError(
            f"resource {resource.name!r} is reached over SSH, and the task group's owner has "
            "no profile on it"
        )
    if ssh is None:
        raise ValueError("no SSH connections here to reach the login node")
    return SshPlace.of(resource, profile, ssh)


def place_of(run: ActivityRun, view: GroupView) -> Place:
    """The place of the task group of this activity; StepFailedError when unreachable."""
    try:
        return place_for(view.resource, view.profile, run.ssh, run.private_paths)
    except ValueError as error:
        raise StepFailedError(str(error)) from None


async def workflows_using(
    session: AsyncSession, group_id: int, user_id: int
) -> tuple[list[str], int]:
    """The workflows (named when the user can see them; else counted) using the group's tasks."""
    rows = (
        await session.exec(
            select(Workflow.id, Workflow.name, Workflow.project_id)
            .join(WorkflowTask, col(WorkflowTask.workflow_id) == Workflow.id)
            .join(Task, col(Task.id) == WorkflowTask.task_id)
            .where(Task.taskgroupv2_id == group_id)
            .distinct()
            .order_by(col(Workflow.id))
        )
    ).all()
    if not rows:
        return [], 0
    mine = set(
        (
            await session.exec(
                select(LinkUserProject.project_id).where(LinkUserProject.user_id == user_id)
            )
        ).all()
    )
    named = [
        f"workflow {name!r} (id {wf_id}) of project {project_id}"
        for wf_id, name, project_id in rows
        if project_id in mine
    ]
    return named, len(rows) - len(named)


async def check_unused(session: AsyncSession, group_id: int, user_id: int) -> None:
    """StepFailedError naming the workflows that still use the group's tasks."""
    named, others = await workflows_using(session, group_id, user_id)
    if not named and not others:
        return
    parts = list(named)
    if others:
        parts.append(f"{others} workflow(s) of other users")
    raise StepFailedError(
        f"task group {group_id} is still used by {'; '.join(parts)}: remove its tasks from "
        "these workflows first"
    )


async def active_jobs_using(session: AsyncSession, group_id: int) -> list[tuple[int, str]]:
    """Jobs submitted or running whose workflow has a task of the group."""
    rows = (
        await session.exec(
            select(Job.id, Job.status)
            .join(WorkflowTask, col(WorkflowTask.workflow_id) == Job.workflow_id)
            .join(Task, col(Task.id) == WorkflowTask.task_id)
            .where(
                Task.taskgroupv2_id == group_id,
                col(Job.status).in_([str(status) for status in ACTIVE_JOB_STATUSES]),
            )
            .distinct()
            .order_by(col(Job.id))
        )
    ).all()
    return [(job_id, status) for job_id, status in rows if job_id is not None]


async def delete_group_rows(session: AsyncSession, group_id: int) -> None:
    """Delete the group and its tasks; its activities stay, as a record, unlinked. Commits."""
    await session.exec(delete(Task).where(col(Task.taskgroupv2_id) == group_id))
    await session.exec(
        update(TaskGroupActivity)
        .where(col(TaskGroupActivity.taskgroupv2_id) == group_id)
        .values(taskgroupv2_id=None)
    )
    group = await session.get(TaskGroup, group_id)
    if group is not None:
        await session.delete(group)
    await session.commit()
