"""The executor interface: what the workflow run asks of every backend (local, SLURM, ...).

The workflow run hands an executor the units of one task at a time and never asks which
executor it holds; whatever differs between backends is behind these methods.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..taskcall import UnitCall


@dataclass
class UnitResult:
    unit_id: int
    exit_code: int | None  # None: the unit never ran, or was killed before it could end
    reason: str | None = None  # plain words when the unit did not end by itself
    warm: bool | None = None  # ran from a warm parent (True), cold (False), unknown (None)


ResultCallback = Callable[[UnitResult], None]


class ExecutorUnavailableError(Exception):
    """The job's resource cannot run it (misconfigured, or of a type not driven yet); the
    message says why in a sentence."""


@dataclass
class TaskInfo:
    """What an executor needs to know about the task whose units it runs."""

    run_id: int
    order: int
    name: str
    meta: dict[str, Any] = field(default_factory=dict)
    warm_start: bool = True  # the warm_start meta of the task and of the workflow task


class Executor(ABC):
    @property
    @abstractmethod
    def runs_as_account(self) -> bool:
        """Units run as another account (a cluster user, a local profile's username):
        they write into that account's folder of the job, not the runner's."""

    async def prepare_job(self, zarr_dir: str) -> None:  # noqa: B027 (most need nothing)
        """Make what the job's units need before any of them starts; nothing by default."""

    @abstractmethod
    async def prepare_folder(self, folder: Path) -> Path:
        """A task's folder for its units' files, writable by the account they run as."""

    @abstractmethod
    async def adopt(self, call: UnitCall) -> UnitResult | None:
        """Reattach after a restart to a unit an earlier runner started: wait for it and
        return its result, or None when this unit has to be run (again) through `run`."""

    @abstractmethod
    async def run(
        self,
        task: TaskInfo,
        calls: list[UnitCall],
        on_result: ResultCallback,
        stop: asyncio.Event,
        fail_fast: bool = True,
    ) -> None:
        """Run the task's units, reporting each result as it comes (exactly once per unit).

        When `stop` is set, cancel the running units and start no more; with `fail_fast`,
        a failed unit does the same. Units that never ran are reported with no exit code.
        """
