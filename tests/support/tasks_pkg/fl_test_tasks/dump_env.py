"""dump_env (parallel): report what a unit can see of the machine, as an attacker would try.

Writes `<zarr_url>/dump_env.json`: the unit's environment and uid, what reading each of
`probe_paths` gave, and what reading `/proc/<pid>/environ` of each process above it (its
launcher or worker, the runner, the server...) and of each of `probe_pids` gave.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

try:
    from ._contract import clean_url, run_task
except ImportError:  # run as a script: python <package_root>/dump_env.py
    from _contract import clean_url, run_task

REPORT = "dump_env.json"


def _try_read(path: str) -> str:
    """'read N bytes: <start>' or 'denied: <why>'."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(4096)
    except OSError as error:
        return f"denied: {error.strerror}"
    return f"read {len(data)} bytes: {data[:200].decode(errors='replace')}"


def _ancestors() -> list[int]:
    """The pids above this process, up to (not including) pid 1."""
    pids, pid = [], os.getppid()
    while pid > 1:
        pids.append(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                pid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _try_temp_file() -> str:
    """'ok', or why a temporary file cannot be made (a confined unit still needs them)."""
    folder = os.environ.get("TMPDIR", "/tmp")  # not gettempdir(): it falls back quietly
    try:
        with tempfile.NamedTemporaryFile(dir=folder) as handle:
            handle.write(b"x")
    except OSError as error:
        return f"failed in {folder}: {error}"
    return "ok"


def dump_env(
    zarr_url: str, probe_paths: list[str] | None = None, probe_pids: list[int] | None = None
) -> dict[str, Any]:
    """Record the environment, the uid and what each probe gave; attribute `uid`."""
    pids = [*_ancestors(), *(probe_pids or [])]
    report = {
        "environ": dict(os.environ),
        "uid": os.getuid(),
        "temp_file": _try_temp_file(),
        "paths": {path: _try_read(path) for path in probe_paths or []},
        "proc_environ": {str(pid): _try_read(f"/proc/{pid}/environ") for pid in pids},
    }
    folder = Path(clean_url(zarr_url))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT).write_text(json.dumps(report))
    print(f"dump_env: wrote {folder / REPORT}")
    update = {"zarr_url": clean_url(zarr_url), "attributes": {"uid": os.getuid()}}
    return {"image_list_updates": [update]}


if __name__ == "__main__":
    run_task(dump_env)
