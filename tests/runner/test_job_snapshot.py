"""The job's snapshot, as stored at submission, read through typed models.

The stored JSON keeps its shape: a job written by an earlier version (without the task's
own meta, with nulls where a workflow task set nothing) is still read after a restart.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fractal_like.models import Job
from fractal_like.runner.snapshot import JobSnapshot, SnapshotError


def entry(**changes: Any) -> dict[str, Any]:
    """One `task_list` entry as submission stores it: flat, task fields beside the wftask's."""
    stored = {
        "id": 11,
        "order": 0,
        "task_id": 5,
        "task_name": "threshold",
        "task_type": "compound",
        "pkg_name": "fl-test-tasks",
        "version": "0.1.0",
        "args_non_parallel": {"level": 2},
        "args_parallel": None,
        "meta_non_parallel": None,
        "meta_parallel": {"cpus_per_task": 2},
        "task_meta_non_parallel": {},
        "task_meta_parallel": {"warm_start": False},
        "type_filters": {"is_3D": False},
        "command_non_parallel": "python init.py",
        "command_parallel": "python compute.py",
        "input_types": {"raw": True},
        "output_types": {"thresholded": True},
    }
    stored.update(changes)
    return stored


def job_of(task_list: list[Any], first: int = 0, last: int | None = None) -> Job:
    return Job(
        id=1,
        project_id=1,
        workflow_id=1,
        dataset_id=1,
        user_email="someone@example.org",
        dataset_dump={"id": 1, "name": "ds", "zarr_dir": "/data/ds"},
        workflow_dump={"id": 1, "name": "wf", "task_list": task_list},
        first_task_index=first,
        last_task_index=len(task_list) - 1 if last is None else last,
        status="running",
    )


def test_the_stored_entry_reads_as_a_workflow_task_and_its_task() -> None:
    stored = entry()
    snapshot = JobSnapshot.of(job_of([copy.deepcopy(stored)]))
    assert snapshot.zarr_dir == "/data/ds"
    (wftask,) = snapshot.workflow_tasks
    assert (wftask.id, wftask.order) == (11, 0)
    assert wftask.args_non_parallel == {"level": 2}
    assert wftask.args_parallel == {}  # null: nothing set
    assert wftask.meta_for(parallel=True) == {"cpus_per_task": 2}
    assert wftask.meta_for(parallel=False) == {}
    assert wftask.type_filters == {"is_3D": False}
    task = wftask.task
    assert (task.id, task.name, task.type) == (5, "threshold", "compound")
    assert (task.pkg_name, task.version) == ("fl-test-tasks", "0.1.0")
    assert task.meta_for(parallel=True) == {"warm_start": False}
    assert task.command(parallel=False) == "python init.py"
    assert task.command(parallel=True) == "python compute.py"
    assert (task.input_types, task.output_types) == ({"raw": True}, {"thresholded": True})
    # The history keeps the entry exactly as stored.
    assert wftask.stored == stored


def test_an_entry_of_an_earlier_version_is_still_read() -> None:
    older = entry(type_filters=None, input_types=None)
    for key in ("task_meta_non_parallel", "task_meta_parallel", "pkg_name", "version"):
        del older[key]
    (wftask,) = JobSnapshot.of(job_of([older])).workflow_tasks
    assert wftask.task.meta_for(parallel=True) == {}
    assert wftask.type_filters == {} and wftask.task.input_types == {}
    assert wftask.task.pkg_name is None


def test_only_the_tasks_the_job_runs_are_read_in_order() -> None:
    task_list = [entry(id=10 + i, order=i, task_name=f"t{i}") for i in range(4)]
    task_list[0] = {"not": "a task"}  # outside the job's range: never read
    snapshot = JobSnapshot.of(job_of(task_list, first=1, last=2))
    assert [wftask.task.name for wftask in snapshot.workflow_tasks] == ["t1", "t2"]


@pytest.mark.parametrize(
    ("task_list", "first", "last", "words"),
    [
        ([entry()], 0, 1, "the job runs workflow tasks 0 to 1, but its workflow snapshot holds 1"),
        ([entry(task_name=None)], 0, 0, "the job's snapshot cannot be read"),
        ([entry(meta_parallel=["not", "a", "mapping"])], 0, 0, "the job's snapshot cannot be"),
    ],
)
def test_a_snapshot_that_cannot_run_says_why(
    task_list: list[Any], first: int, last: int, words: str
) -> None:
    with pytest.raises(SnapshotError) as raised:
        JobSnapshot.of(job_of(task_list, first, last))
    assert str(raised.value).startswith(words)


def test_a_task_without_the_command_its_type_needs_says_so() -> None:
    (wftask,) = JobSnapshot.of(job_of([entry(command_parallel=None)])).workflow_tasks
    with pytest.raises(SnapshotError, match="task 'threshold' \\(compound\\) has no parallel"):
        wftask.task.command(parallel=True)
