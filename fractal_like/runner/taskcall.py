"""The task-call contract: args JSON in, output JSON out, a log file, an exit-code file.

A unit's command line is `<command> --args-json A --out-json O`. Its exit-code file is
written once the unit has ended, by the node worker that started it (`node/worker.py`),
never by the runner, so a runner that died while the unit ran can tell afterwards whether
(and how) the unit ended. A local worker writes its own pid once per batch (`-pid`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .node import report as node_report
from .node.batch import (
    ARGS_SUFFIX,
    EXIT_CODE_SUFFIX,
    LOG_SUFFIX,
    OUTPUT_SUFFIX,
    PID_SUFFIX,
    RESULT_SUFFIX,
)

MAX_PARALLELIZATION_LIST = 20_000


class TaskOutputError(ValueError):
    """A task wrote an output file that breaks the contract; the message says how."""


class ImageUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zarr_url: str = Field(min_length=1, max_length=4096)
    origin: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    types: dict[str, bool] = Field(default_factory=dict)


class TaskOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_list_updates: list[ImageUpdate] = Field(default_factory=list)
    image_list_removals: list[str] = Field(default_factory=list)


class ParallelizationItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zarr_url: str = Field(min_length=1, max_length=4096)
    init_args: dict[str, Any] = Field(default_factory=dict)


class InitOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parallelization_list: list[ParallelizationItem] = Field(
        default_factory=list, max_length=MAX_PARALLELIZATION_LIST
    )


@dataclass
class UnitFiles:
    """Where one unit's files live, inside its task's folder."""

    folder: Path
    prefix: str

    @property
    def args(self) -> Path:
        return self.folder / f"{self.prefix}{ARGS_SUFFIX}"

    @property
    def output(self) -> Path:
        return self.folder / f"{self.prefix}{OUTPUT_SUFFIX}"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.prefix}{LOG_SUFFIX}"

    @property
    def exit_code(self) -> Path:
        return self.folder / f"{self.prefix}{EXIT_CODE_SUFFIX}"

    @property
    def pid(self) -> Path:
        return self.folder / f"{self.prefix}{PID_SUFFIX}"

    @property
    def result(self) -> Path:
        return self.folder / f"{self.prefix}{RESULT_SUFFIX}"


@dataclass
class UnitCall:
    """One call of a task command: what the executor needs, nothing about the database."""

    unit_id: int
    command: str
    args: dict[str, Any]
    files: UnitFiles
    env: dict[str, str] = field(default_factory=dict)


def read_exit_code(files: UnitFiles) -> int | None:
    return node_report.read_exit_code(str(files.exit_code))


def read_pid(files: UnitFiles) -> int | None:
    try:
        return int(files.pid.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError as error:
        raise TaskOutputError(f"{path.name} is not valid JSON ({error})") from None


def _explain(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "output"
    return f"{where}: {first['msg']}"


def read_task_output(files: UnitFiles) -> TaskOutput:
    data = _read_json(files.output)
    if data is None:
        return TaskOutput()
    try:
        return TaskOutput.model_validate(data)
    except ValidationError as error:
        raise TaskOutputError(f"the task's output breaks the contract: {_explain(error)}") from None


def read_init_output(files: UnitFiles) -> InitOutput:
    data = _read_json(files.output)
    if data is None:
        return InitOutput()
    try:
        return InitOutput.model_validate(data)
    except ValidationError as error:
        raise TaskOutputError(
            f"the init step's output breaks the contract: {_explain(error)}"
        ) from None


def log_tail(files: UnitFiles, max_bytes: int = 4000) -> str:
    try:
        size = os.path.getsize(files.log)
        with files.log.open("rb") as handle:
            handle.seek(max(0, size - max_bytes))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""
