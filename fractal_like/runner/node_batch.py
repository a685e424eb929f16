"""The batch document for the node worker, built from the units of one task.

One builder for every executor (local, SLURM): the format is `node/batch.py`'s, the unit
description is `taskcall.UnitCall`, and whether a command runs warm comes from
`warm_choice` (decided here, once, never by the worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..task_command import split_command
from .node.batch import FORMAT, KILL_GRACE_SECONDS
from .taskcall import UnitCall
from .warm_choice import command_runs_warm


@dataclass(frozen=True, kw_only=True)
class WorkerOptions:
    """How the worker runs a batch, beyond its units (see `node/batch.py`)."""

    parallelism: int
    fail_fast: bool
    kill_grace: float = KILL_GRACE_SECONDS
    pid_file: str | None = None
    control_on_stdin: bool = False  # the runner writes "stop" / closes the worker's stdin
    memory_limit_mb: int | None = None
    confine: Sequence[str] | None = None  # paths no unit may reach; None: no confinement
    umask: int | None = None
    result_files: bool = False
    remove_batch: bool = False


def build_batch(
    calls: Sequence[UnitCall], warm_start: bool, options: WorkerOptions
) -> dict[str, Any]:
    """The batch document; `warm_start` is the task's switch (`TaskInfo.warm_start`)."""
    indexes: dict[str, int] = {}
    commands: list[dict[str, Any]] = []
    folders: dict[Path, str] = {}
    units: list[dict[str, Any]] = []
    # Plain strings and the C JSON encoder: thousands of units, built in the event loop.
    for call in calls:
        index = indexes.get(call.command)
        if index is None:
            argv = split_command(call.command)
            index = indexes[call.command] = len(commands)
            commands.append({"argv": argv, "warm": command_runs_warm(warm_start, argv)})
        units.append(
            {
                "id": call.unit_id,
                "command": index,
                "args": call.args,
                "folder": folders.setdefault(call.files.folder, str(call.files.folder)),
                "prefix": call.files.prefix,
                "env": call.env or None,
            }
        )
    document: dict[str, Any] = {
        "format": FORMAT,
        "parallelism": options.parallelism,
        "fail_fast": options.fail_fast,
        "kill_grace": options.kill_grace,
        "result_files": options.result_files,
        "remove_batch": options.remove_batch,
        "commands": commands,
        "units": units,
    }
    if options.pid_file is not None:
        document["pid_file"] = options.pid_file
    if options.control_on_stdin:
        document["control"] = "stdin"
    if options.memory_limit_mb is not None:
        document["memory_limit_mb"] = options.memory_limit_mb
    if options.confine is not None:
        document["confine"] = list(options.confine)
    if options.umask is not None:
        document["umask"] = options.umask
    return document
