"""fail (parallel): fail on purpose, for every image or for the images matching `fail_on`."""

from __future__ import annotations

import sys

try:
    from ._contract import run_task
except ImportError:  # run as a script: python <package_root>/fail.py
    from _contract import run_task


def fail(zarr_url: str, fail_on: str | None = None, message: str = "planned failure") -> None:
    """Raise RuntimeError(message) if fail_on is None or a substring of zarr_url; else succeed."""
    if fail_on is None or fail_on in zarr_url:
        print(message, file=sys.stderr, flush=True)
        raise RuntimeError(message)
    print(f"fail: {zarr_url} does not contain {fail_on!r}; succeeding", flush=True)


if __name__ == "__main__":
    run_task(fail)
