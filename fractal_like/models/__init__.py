"""Every table, imported here so that SQLModel.metadata knows them all."""

from sqlalchemy import Table
from sqlmodel import SQLModel

from .accounting import AccountingRecord, AccountingRecordSlurm, SlurmUsage
from .dataset import Dataset, Image
from .history import HistoryImageCache, HistoryRun, HistoryUnit
from .job import ACTIVE_JOB_STATUSES, Job, JobStatus
from .project import LinkUserProject, Project
from .resource import Profile, Resource
from .security import LinkUserGroup, OAuthAccount, UserGroup, UserOAuth
from .slurm import SlurmJob
from .task import Task, TaskGroup, TaskGroupActivity
from .workflow import Workflow, WorkflowTask, WorkflowTemplate

__all__ = [
    "ACTIVE_JOB_STATUSES",
    "AccountingRecord",
    "AccountingRecordSlurm",
    "Dataset",
    "HistoryImageCache",
    "HistoryRun",
    "HistoryUnit",
    "Image",
    "Job",
    "JobStatus",
    "LinkUserGroup",
    "LinkUserProject",
    "OAuthAccount",
    "Profile",
    "Project",
    "Resource",
    "SQLModel",
    "SlurmJob",
    "SlurmUsage",
    "Task",
    "TaskGroup",
    "TaskGroupActivity",
    "UserGroup",
    "UserOAuth",
    "Workflow",
    "WorkflowTask",
    "WorkflowTemplate",
    "table_of",
]


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a table model, for bulk statements that skip the ORM.

    SQLModel sets `__table__` only on `table=True` classes, so type checkers cannot see it."""
    table = model.__dict__.get("__table__")
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table
