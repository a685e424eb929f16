"""noisy_output (parallel): write many lines to stdout and stderr, alternately."""

from __future__ import annotations

import sys

try:
    from ._contract import run_task
except ImportError:  # run as a script: python <package_root>/noisy_output.py
    from _contract import run_task


def noisy_output(zarr_url: str, lines: int = 2000) -> None:
    """Write `lines` lines: even ones (0, 2, ...) to stdout, odd ones to stderr; no output."""
    for number in range(lines):
        stream = sys.stdout if number % 2 == 0 else sys.stderr
        name = "stdout" if number % 2 == 0 else "stderr"
        stream.write(f"noisy {name} line {number} for {zarr_url}\n")
    sys.stdout.flush()
    sys.stderr.flush()


if __name__ == "__main__":
    run_task(noisy_output)
