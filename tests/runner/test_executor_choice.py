"""Which executor runs a job, chosen from its resource and profile; the error when none can.

And the wall the executor interface stands for: the workflow run never asks which
executor it holds.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fractal_like.models import Job, Profile, Resource
from fractal_like.runner import workflow_run
from fractal_like.runner.executors.base import Executor, ExecutorUnavailableError
from fractal_like.runner.executors.local import LocalExecutor
from fractal_like.runner.executors.select import RunnerFacilities, executor_for
from fractal_like.runner.slurm.executor import SlurmExecutor
from fractal_like.runner.slurm.facilities import SlurmFacilities, SshLogin
from fractal_like.runner.slurm.job_files import SshClusterFiles
from fractal_like.runner.slurm.ssh_host import SshTarget

from ..support.slurm_scene import slurm_config

WORKER_PYTHON = "/usr/bin/python3"


@pytest.fixture
def database() -> Iterator[AsyncEngine]:
    engine = create_async_engine("sqlite+aiosqlite://")  # never connected: nothing is run
    yield engine
    engine.sync_engine.dispose()


def facilities(database: AsyncEngine, parallelism: int | None = None) -> RunnerFacilities:
    return RunnerFacilities(database, SlurmFacilities(), parallelism, private_paths=None)


def job(tmp_path: Path) -> Job:
    return Job(
        id=7,
        project_id=1,
        workflow_id=1,
        dataset_id=1,
        user_email="someone@example.org",
        working_dir=str(tmp_path / "server"),
        working_dir_user=str(tmp_path / "user"),
        first_task_index=0,
        last_task_index=0,
        status="running",
        slurm_account=None,
    )


def resource(kind: str, config: dict[str, Any], python: str | None = WORKER_PYTHON) -> Resource:
    return Resource(
        id=3,
        name="cluster",
        type=kind,
        jobs_local_dir="/srv/jobs",
        tasks_local_dir="/srv/tasks",
        jobs_runner_config=config,
        jobs_slurm_python_worker=python,
    )


def profile(kind: str, username: str | None) -> Profile:
    return Profile(id=4, resource_id=3, name="a-profile", resource_type=kind, username=username)


def test_no_profile_runs_locally_as_the_runner(tmp_path: Path, database: AsyncEngine) -> None:
    chosen = executor_for(job(tmp_path), None, None, facilities(database, parallelism=3))
    assert isinstance(chosen, LocalExecutor)
    assert not chosen.runs_as_account and chosen.account is None
    assert chosen.parallelism == 3


def test_local_resource_takes_its_configuration(tmp_path: Path, database: AsyncEngine) -> None:
    config = {"parallel_tasks_per_job": 2, "memory_limit_per_unit_mb": 300}
    chosen = executor_for(
        job(tmp_path), resource("local", config), profile("local", None), facilities(database)
    )
    assert isinstance(chosen, LocalExecutor)
    assert (chosen.parallelism, chosen.memory_limit_mb) == (2, 300)
    assert not chosen.runs_as_account
    assert chosen.python != WORKER_PYTHON  # the runner's own interpreter
    # The runner's own setting wins over the resource's.
    again = executor_for(
        job(tmp_path), resource("local", config), profile("local", None), facilities(database, 5)
    )
    assert isinstance(again, LocalExecutor) and again.parallelism == 5


def test_local_profile_with_username_runs_as_that_account(
    tmp_path: Path, database: AsyncEngine
) -> None:
    chosen = executor_for(
        job(tmp_path), resource("local", {}), profile("local", "alice"), facilities(database)
    )
    assert isinstance(chosen, LocalExecutor)
    assert chosen.runs_as_account and chosen.account == "alice"
    assert chosen.python == WORKER_PYTHON  # one the account can run


def test_slurm_sudo_resource_gets_the_slurm_executor(tmp_path: Path, database: AsyncEngine) -> None:
    chosen = executor_for(
        job(tmp_path),
        resource("slurm_sudo", slurm_config()),
        profile("slurm_sudo", "alice"),
        facilities(database),
    )
    assert isinstance(chosen, SlurmExecutor)
    assert chosen.runs_as_account
    assert chosen.settings.python_worker == WORKER_PYTHON and chosen.settings.job_id == 7


def test_slurm_ssh_resource_gets_the_slurm_executor_over_its_login(
    tmp_path: Path, database: AsyncEngine
) -> None:
    config = {**slurm_config(), "ssh": {"port": 2222, "known_hosts": "/srv/known_hosts"}}
    cluster = resource("slurm_ssh", config)
    cluster.host = "login.example.org"
    login = profile("slurm_ssh", "alice")
    login.ssh_key_path = "/srv/keys/alice"
    shared = facilities(database)
    chosen = executor_for(job(tmp_path), cluster, login, shared)
    assert isinstance(chosen, SlurmExecutor) and isinstance(chosen.files, SshClusterFiles)
    assert chosen.commands.cluster.user == "alice"
    assert chosen.poller is not shared.slurm.poller  # squeue runs on the login node
    target = shared.slurm.ssh_poller(
        SshLogin(
            SshTarget("login.example.org", "alice", "/srv/keys/alice", "/srv/known_hosts", 2222)
        )
    )
    assert chosen.poller is target  # one poller per login, shared by its jobs
    # No key: a sentence, not a connection attempt.
    login.ssh_key_path = None
    with pytest.raises(ExecutorUnavailableError, match="has no ssh_key_path"):
        executor_for(job(tmp_path), cluster, login, shared)


@pytest.mark.parametrize(
    ("kind", "config", "python", "username", "words"),
    [
        (
            "pbs",
            slurm_config(),
            WORKER_PYTHON,
            "alice",
            "resource 'cluster' is of type 'pbs', which this runner cannot drive",
        ),
        (
            "slurm_ssh",
            slurm_config(),
            WORKER_PYTHON,
            "alice",
            "resource 'cluster' has no host to reach: tell an admin",
        ),
        (
            "slurm_sudo",
            {"default_slurm_config": {}},
            WORKER_PYTHON,
            "alice",
            "the SLURM configuration of resource 'cluster' is invalid",
        ),
        (
            "slurm_sudo",
            slurm_config(),
            None,
            "alice",
            "resource 'cluster' has no jobs_slurm_python_worker: tell an admin",
        ),
        (
            "slurm_sudo",
            slurm_config(),
            WORKER_PYTHON,
            None,
            "profile 'a-profile' has no cluster username: tell an admin",
        ),
        (
            "slurm_sudo",
            slurm_config(),
            WORKER_PYTHON,
            "no such user!",
            "'no such user!' is not a valid cluster user name",
        ),
        (
            "local",
            {"parallel_tasks_per_job": 0},
            None,
            None,
            "the runner configuration of resource 'cluster' is invalid",
        ),
    ],
)
def test_a_resource_that_cannot_run_the_job_says_why(
    tmp_path: Path,
    database: AsyncEngine,
    kind: str,
    config: dict[str, Any],
    python: str | None,
    username: str | None,
    words: str,
) -> None:
    with pytest.raises(ExecutorUnavailableError) as raised:
        executor_for(
            job(tmp_path),
            resource(kind, config, python),
            profile(kind, username),
            facilities(database),
        )
    assert str(raised.value).startswith(words)


def _executor_class_names() -> set[str]:
    """Every executor class the package defines (and the interface itself)."""
    names = {Executor.__name__}
    pending = [Executor]
    while pending:
        for subclass in pending.pop().__subclasses__():
            names.add(subclass.__name__)
            pending.append(subclass)
    return names


def test_the_workflow_run_never_tests_which_executor_it_holds() -> None:
    names = _executor_class_names()
    assert {"LocalExecutor", "SlurmExecutor"} <= names
    tree = ast.parse(inspect.getsource(workflow_run))
    type_tests = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("isinstance", "issubclass")
    ]
    named = {
        name.id
        for node in type_tests
        for argument in node.args[1:]
        for name in ast.walk(argument)
        if isinstance(name, ast.Name)
    }
    assert not named & names, f"the workflow run tests executor types: {named & names}"
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    concrete = names - {Executor.__name__}
    assert not imported & concrete, f"the workflow run imports {imported & concrete}"
