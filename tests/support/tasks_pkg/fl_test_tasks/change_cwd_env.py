"""change_cwd_env (parallel): read the environment and working folder, then change both."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

try:
    from ._contract import clean_url, run_task
except ImportError:  # run as a script: python <package_root>/change_cwd_env.py
    from _contract import clean_url, run_task


def change_cwd_env(zarr_url: str, variable: str = "FL_TEST_VALUE") -> dict[str, Any]:
    """Return the folder and `variable` it started with; then move to zarr_url and set it."""
    started_in = os.getcwd()
    value = os.environ.get(variable)
    folder = Path(clean_url(zarr_url))
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    os.environ[variable] = "changed by the task"
    print(f"change_cwd_env: {variable}={value!r} in {started_in}; now in {os.getcwd()}")
    attributes = {"started_in": started_in, "value": value, "ended_in": os.getcwd()}
    return {"image_list_updates": [{"zarr_url": clean_url(zarr_url), "attributes": attributes}]}


if __name__ == "__main__":
    run_task(change_cwd_env)
