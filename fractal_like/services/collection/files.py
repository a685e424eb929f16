"""Removing what collection created, and nothing else.

Task groups collected from packages live in `<tasks root>/<user_id>/<pkg>/<version>`, the
tasks root being the resource's tasks_local_dir (or, on slurm_ssh, the profile's
tasks_remote_dir on the login node: see place.py).
A removal is refused unless the folder lies strictly inside the resource's tasks folder,
so a wrong path in the database can never remove anything else.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path, PurePosixPath


class UnsafeRemovalError(ValueError):
    """The folder is not inside the tasks folder: it is left alone."""


def checked_target(path: str, root: str, real_root: str, real_parent: str) -> PurePosixPath:
    """The real location of `path` (its own name not followed), given the real locations of
    the root and of path's parent (resolved where the files are: here, or on a login node);
    UnsafeRemovalError unless it lies strictly inside the root."""
    target = PurePosixPath(real_parent) / posixpath.basename(posixpath.normpath(path))
    if target == PurePosixPath(real_root) or PurePosixPath(real_root) not in target.parents:
        raise UnsafeRemovalError(f"{path} is not inside the tasks folder {root}: it was left alone")
    return target


def _inside(path: str, root: str) -> Path:
    parent = os.path.dirname(os.path.abspath(path))
    real_root, real_parent = os.path.realpath(root), os.path.realpath(parent)
    return Path(checked_target(os.path.abspath(path), root, real_root, real_parent))


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
