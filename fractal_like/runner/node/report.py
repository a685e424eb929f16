"""What the worker says about a finished unit: its exit-code file, its result, its line.

STDLIB ONLY, Python >= 3.9 syntax: part of the node package (see `__init__.py`).

* The **exit-code file** holds the bare integer, written last, in one write under a
  temporary name and renamed into place: a reader (maybe on another host, over NFS) sees
  either no file or the whole number. Its presence means "the unit finished"; the runner
  never writes it.
* The **report line**, one JSON line per finished (or skipped, or stopped) unit on the
  worker's stdout: `{"id": 17, "code": 0, "reason": null, "warm": false}`; `"code"` is
  null for a unit the worker stopped before it finished, `"skipped": true` marks a unit a
  previous run had finished already.
* The **result file** (optional, for SLURM, where nobody reads the worker's stdout live):
  the report line plus host, pid, start and end times.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

SIGNAL_BASE = 128  # a unit killed by a signal records 128 + the signal, as a shell does
# What /bin/sh reports for a command it cannot run, kept so a missing program reads the same.
NOT_FOUND, NOT_EXECUTABLE = 127, 126
LOST_EXIT_CODE = 125  # like `env`/`nice`: the runner's own machinery failed, not the task
STOPPED = "stopped before it finished"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def start_failure_code(error: OSError) -> int:
    """Like a shell: 127 for a program that is not there, 126 for anything else."""
    return NOT_FOUND if isinstance(error, FileNotFoundError) else NOT_EXECUTABLE


def write_exit_code(path: str, code: int) -> None:
    """The one writer of exit-code files (a copy made elsewhere uses write_whole too)."""
    write_whole(path, f"{code}\n".encode())


def write_whole(path: str, data: bytes) -> None:
    """Write under a temporary name, then rename: a reader sees the whole file or none."""
    temporary = f"{path}.tmp{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def read_exit_code(path: str) -> int | None:
    """The exit code a run recorded, or None when the unit never finished."""
    try:
        with open(path, "rb") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def report_line(
    unit_id: int, code: int | None, reason: str | None, warm: bool, skipped: bool = False
) -> str:
    line: dict[str, Any] = {"id": unit_id, "code": code, "reason": reason, "warm": warm}
    if skipped:
        line["skipped"] = True
    return json.dumps(line) + "\n"


def parse_report_line(line: bytes) -> dict[str, Any]:
    """One report line as a dict with at least id, code, reason and warm."""
    data = json.loads(line)
    if not isinstance(data, dict) or not isinstance(data.get("id"), int):
        raise ValueError(f"not a report line: {line[:200]!r}")
    return data


def utc(timestamp: float) -> str:
    # time.strftime rather than datetime: identical on every Python this file may meet.
    micros = int((timestamp % 1) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{micros:06d}Z"


def write_result(path: str, result: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
