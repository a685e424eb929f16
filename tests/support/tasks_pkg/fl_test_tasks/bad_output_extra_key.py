"""bad_output_extra_key (parallel): return an output with a key the contract forbids."""

from __future__ import annotations

from typing import Any

try:
    from ._contract import run_task
except ImportError:  # run as a script: python <package_root>/bad_output_extra_key.py
    from _contract import run_task


def bad_output_extra_key(zarr_url: str) -> dict[str, Any]:
    """Return {"unexpected": 1}: task outputs allow only image_list_updates/removals."""
    return {"unexpected": 1}


if __name__ == "__main__":
    run_task(bad_output_extra_key)
