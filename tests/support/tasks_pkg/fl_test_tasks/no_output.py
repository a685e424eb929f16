"""no_output (parallel): do nothing and write no output file."""

from __future__ import annotations

try:
    from ._contract import run_task
except ImportError:  # run as a script: python <package_root>/no_output.py
    from _contract import run_task


def no_output(zarr_url: str) -> None:
    """Do nothing: the server then treats the input image as updated."""


if __name__ == "__main__":
    run_task(no_output)
