"""What runs beside the units: the batch worker, warm parents, confinement.

STDLIB ONLY, Python >= 3.9 syntax: this package is copied beside a job (for SLURM, or for
units run as another account) and run with whatever `python3` is there; nothing in it may
import the rest of fractal_like or a third-party package. Every executor uses it:

- `batch.py`: the batch document (one format, built by `runner/node_batch.py`);
- `report.py`: the exit-code file (one atomic writer), the report line, the result file;
- `worker.py`: runs a batch's units (`__main__.py` is its entry);
- `warm.py` (a warm parent, run by path) and `warm_pool.py` (its client in the worker);
- `sandbox.py`: Landlock confinement of the worker and so of its units.

The two helpers below are what the runner uses to place the package and start a worker.
"""

from __future__ import annotations

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
COPY_NAME = "fractal_like_node"  # the folder name of a copy beside a job


def package_files() -> list[str]:
    return sorted(name for name in os.listdir(PACKAGE_DIR) if name.endswith(".py"))


def install(folder: str) -> str:
    """A copy of this package in `folder` (made once, readable by every account): the
    worker's program for a job whose account may not read the server's install."""
    target = os.path.join(folder, COPY_NAME)
    if os.path.isdir(target):
        return target
    # Imported here: the worker imports this package too, and never needs them.
    import shutil
    import tempfile

    staging = tempfile.mkdtemp(prefix=f".{COPY_NAME}-", dir=folder)
    for name in package_files():
        shutil.copyfile(os.path.join(PACKAGE_DIR, name), os.path.join(staging, name))
        os.chmod(os.path.join(staging, name), 0o644)
    os.chmod(staging, 0o755)
    try:
        os.rename(staging, target)  # whole or not at all
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another copy won the race
    return target


def worker_argv(python: str, package: str, batch_file: str) -> list[str]:
    """The worker's command line: the package's folder run by path, isolated (-I) and
    without site-packages (-S): it needs the standard library only, and starts faster."""
    return [python, "-I", "-S", package, batch_file]
