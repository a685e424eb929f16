"""The batch document: what the runner asks one worker process to run (JSON, never pickle).

STDLIB ONLY, Python >= 3.9 syntax: part of the node package (see `__init__.py`). The runner
builds it (`fractal_like.runner.node_batch`) for every executor; the worker reads it::

    {"format": "fractal-like-batch/2",
     "parallelism": 2,               # units running at once
     "fail_fast": false,             # a failed unit stops the others and starts no more
     "kill_grace": 2.0,              # optional: seconds between SIGTERM and SIGKILL
     "pid_file": "/job/x-pid",       # optional: the worker writes its pid there first
     "control": "stdin",             # optional: read "stop" / end of file on stdin
     "memory_limit_mb": 512,         # optional: RLIMIT_DATA of every unit (and warm parent)
     "confine": ["/srv/secret"],     # optional: Landlock keeps every unit from these paths
     "umask": 18,                    # optional: the worker's umask (units inherit it)
     "result_files": true,           # optional: a <prefix>-result.json per finished unit
     "remove_batch": true,           # optional: delete this file once read
     "commands": [{"argv": ["/usr/bin/python3", "/pkg/task.py"], "warm": true}],
     "units": [{"id": 17, "command": 0, "args": {...},
                "folder": "/job/1_task", "prefix": "par_000001",
                "env": {"K": "V"}}]}     # optional: added to the worker's environment

A unit runs `argv + ["--args-json", A, "--out-json", O]` in `folder`, where its files are
`<prefix>-args.json` (A), `<prefix>-metadiff.json` (O), `<prefix>-log.txt` (stdout and
stderr), `<prefix>-exitcode` and `<prefix>-result.json`. A command's `warm` is the runner's
decision (the task's `warm_start` meta and the `<python> <script.py>` form): the worker
follows it and never decides it.
"""

from __future__ import annotations

import json
import os
from typing import Any

FORMAT = "fractal-like-batch/2"
KILL_GRACE_SECONDS = 2.0

# A unit's files are `<folder>/<prefix><suffix>`.
ARGS_SUFFIX = "-args.json"
OUTPUT_SUFFIX = "-metadiff.json"
LOG_SUFFIX = "-log.txt"
EXIT_CODE_SUFFIX = "-exitcode"
RESULT_SUFFIX = "-result.json"
PID_SUFFIX = "-pid"

_TOP_KEYS = {
    "format",
    "parallelism",
    "fail_fast",
    "kill_grace",
    "pid_file",
    "control",
    "memory_limit_mb",
    "confine",
    "umask",
    "result_files",
    "remove_batch",
    "commands",
    "units",
}
_UNIT_KEYS = {"id", "command", "args", "folder", "prefix", "env"}
_COMMAND_KEYS = {"argv", "warm"}


class BatchError(ValueError):
    """The batch breaks the format; the message says where, in plain words."""


def warm_form(argv: list[str]) -> bool:
    """Whether a command is `<absolute python> <absolute script.py>`: the form warm start runs."""
    return (
        len(argv) == 2
        and os.path.isabs(argv[0])
        and os.path.isabs(argv[1])
        and argv[1].endswith(".py")
    )


def unit_file(unit: dict[str, Any], suffix: str) -> str:
    return f"{unit['folder']}/{unit['prefix']}{suffix}"


# ---------------------------------------------------------------------------- checks


def _text(value: Any, where: str) -> str:
    # NUL cannot reach an argv, a path or the environment: refuse it up front.
    if not isinstance(value, str) or not value or "\x00" in value:
        raise BatchError(f"{where} must be a non-empty string without NUL characters")
    return value


def _integer(value: Any, where: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BatchError(f"{where} must be an integer of at least {minimum}")
    return value


def _flag(data: dict[str, Any], key: str) -> None:
    if not isinstance(data.get(key, False), bool):
        raise BatchError(f"{key} must be true or false")


def _check_command(command: Any, index: int) -> None:
    where = f"commands[{index}]"
    if not isinstance(command, dict) or set(command) - _COMMAND_KEYS:
        raise BatchError(f"{where} must be an object with argv and warm")
    argv = command.get("argv")
    if not isinstance(argv, list) or not argv:
        raise BatchError(f"{where}.argv must be a non-empty list of strings")
    for position, item in enumerate(argv):
        _text(item, f"{where}.argv[{position}]")
    if not isinstance(command.get("warm", False), bool):
        raise BatchError(f"{where}.warm must be true or false")
    if command.get("warm") and not warm_form(argv):
        raise BatchError(f"{where} runs warm but is not `<absolute python> <absolute script>`")


def _check_env(env: Any, where: str) -> None:
    if not isinstance(env, dict):
        raise BatchError(f"{where}.env must be an object of strings")
    for name, value in env.items():
        if not name or "=" in name or "\x00" in name or not isinstance(value, str):
            raise BatchError(f"{where}.env has an invalid entry {name!r}")
        if "\x00" in value:
            raise BatchError(f"{where}.env[{name!r}] contains a NUL character")


def _check_unit(unit: Any, index: int, commands: int) -> None:
    where = f"units[{index}]"
    if not isinstance(unit, dict):
        raise BatchError(f"{where} must be an object")
    unknown = sorted(set(unit) - _UNIT_KEYS)
    if unknown:
        raise BatchError(f"{where} has unknown keys: {', '.join(unknown)}")
    _integer(unit.get("id"), f"{where}.id", 0)
    command = unit.get("command")
    if not isinstance(command, int) or isinstance(command, bool) or not 0 <= command < commands:
        raise BatchError(f"{where}.command must be the index of one of the commands")
    if not isinstance(unit.get("args"), dict):
        raise BatchError(f"{where}.args must be an object")
    _text(unit.get("folder"), f"{where}.folder")
    prefix = _text(unit.get("prefix"), f"{where}.prefix")
    if "/" in prefix:
        raise BatchError(f"{where}.prefix must not contain '/'")
    if unit.get("env") is not None:
        _check_env(unit["env"], where)


def check_batch(data: Any) -> dict[str, Any]:
    """Validate a parsed batch; raise BatchError with a plain sentence."""
    if not isinstance(data, dict):
        raise BatchError("the batch must be a JSON object")
    if data.get("format") != FORMAT:
        raise BatchError(f"format must be {FORMAT!r}, got {data.get('format')!r}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise BatchError(f"unknown keys: {', '.join(unknown)}")
    _integer(data.get("parallelism", 1), "parallelism", 1)
    for key in ("fail_fast", "result_files", "remove_batch"):
        _flag(data, key)
    grace = data.get("kill_grace", KILL_GRACE_SECONDS)
    if not isinstance(grace, (int, float)) or isinstance(grace, bool) or grace < 0:
        raise BatchError("kill_grace must be a number of seconds")
    if data.get("pid_file") is not None:
        _text(data["pid_file"], "pid_file")
    if data.get("control") not in (None, "stdin"):
        raise BatchError("control must be 'stdin' or null")
    for key, minimum in (("memory_limit_mb", 1), ("umask", 0)):
        if data.get(key) is not None:
            _integer(data[key], key, minimum)
    confine = data.get("confine")
    if confine is not None and not isinstance(confine, list):
        raise BatchError("confine must be a list of paths")
    for index, path in enumerate(confine or []):
        _text(path, f"confine[{index}]")
    commands = data.get("commands")
    if not isinstance(commands, list):
        raise BatchError("commands must be a list")
    for index, command in enumerate(commands):
        _check_command(command, index)
    units = data.get("units")
    if not isinstance(units, list):
        raise BatchError("units must be a list")
    seen: set[int] = set()
    for index, unit in enumerate(units):
        _check_unit(unit, index, len(commands))
        if unit["id"] in seen:
            raise BatchError(f"units[{index}].id {unit['id']} appears twice")
        seen.add(unit["id"])
    return data


def load_batch(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as error:
        raise BatchError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:  # JSONDecodeError and bad UTF-8 alike
        raise BatchError(f"{path} is not valid JSON ({error})") from None
    return check_batch(data)
