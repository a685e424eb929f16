"""Removing what collection created, and nothing else.

Task groups collected from packages live in `<tasks_local_dir>/<user_id>/<pkg>/<version>`.
A removal is refused unless the folder lies strictly inside the resource's tasks folder,
so a wrong path in the database can never remove anything else.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class UnsafeRemovalError(ValueError):
    """The folder is not inside the tasks folder: it is left alone."""


def _inside(path: str, root: str) -> Path:
    """The real location of `path` (its own name not followed), checked to be inside root."""
    real_root = Path(os.path.realpath(root))
    target = Path(os.path.realpath(os.path.dirname(os.path.abspath(path)))) / os.path.basename(
        os.path.abspath(path)
    )
    if target == real_root or real_root not in target.parents:
        raise UnsafeRemovalError(f"{path} is not inside the tasks folder {root}: it was left alone")
    return target


def remove_folder(path: str, root: str, *, tidy_parents: bool = True) -> bool:
    """Remove `path` (a folder inside `root`), then its parents that became empty.

    Returns whether something was removed.
    """
    target = _inside(path, root)
    removed = False
    if target.is_symlink() or target.is_file():
        target.unlink()
        removed = True
    elif target.exists():
        shutil.rmtree(target)
        removed = True
    if tidy_parents:
        real_root = Path(os.path.realpath(root))
        for parent in target.parents:
            if parent == real_root:
                break
            try:
                parent.rmdir()
            except OSError:
                break  # not empty (other versions, other packages): keep it
    return removed


def make_folder(path: str) -> None:
    """Create a task group's folder; FileExistsError if it is already there."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).mkdir()
