"""illumination_correction (compound), init step: one unit per input image."""

from __future__ import annotations

from typing import Any

try:
    from ._contract import clean_url, logger, run_task
except ImportError:  # run as a script: python <package_root>/illumination_correction_init.py
    from _contract import clean_url, logger, run_task


def illumination_correction_init(
    zarr_urls: list[str], zarr_dir: str, suffix: str = "corrected"
) -> dict[str, Any]:
    """Return a parallelization list with one item per image, passing `suffix` on."""
    items = [{"zarr_url": clean_url(url), "init_args": {"suffix": suffix}} for url in zarr_urls]
    logger.info("parallelization list of %d items (zarr_dir %s)", len(items), zarr_dir)
    return {"parallelization_list": items}


if __name__ == "__main__":
    run_task(illumination_correction_init)
