"""exit_code (non_parallel): end the process with a chosen exit code."""

from __future__ import annotations

import sys

try:
    from ._contract import run_task
except ImportError:  # run as a script: python <package_root>/exit_code.py
    from _contract import run_task


def exit_code(zarr_urls: list[str], zarr_dir: str, code: int = 3) -> None:
    """Exit with `code` (after a line on stderr), writing no output."""
    print(f"exit_code: exiting with code {code} ({len(zarr_urls)} images)", file=sys.stderr)
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    run_task(exit_code)
