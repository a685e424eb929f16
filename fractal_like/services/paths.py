"""Where a user's data may live: absolute, normalised paths inside their project dirs."""

from __future__ import annotations

import os.path
import re

from .errors import InvalidError

_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


class PathRefused(InvalidError, ValueError):  # noqa: N818 - reads better at the raise site
    """A path given by a user is not acceptable; the message says why."""


def slugify(name: str) -> str:
    slug = _SLUG.sub("_", name.strip()).strip("_").lower()
    return slug[:64] or "unnamed"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def normalised_absolute(path: str, what: str = "path") -> str:
    if "\x00" in path:
        raise PathRefused(f"{what} contains a NUL character")
    if not path.startswith("/"):
        raise PathRefused(f"{what} {path!r} is not an absolute path")
    if any(part == ".." for part in path.split("/")):
        raise PathRefused(f"{what} {path!r} must not contain '..'")
    return os.path.normpath(path).rstrip("/") or "/"


def check_user_dir(path: str, allowed_roots: list[str], what: str = "zarr_dir") -> str:
    """The normalised path, if it lies inside one of the allowed roots (symlinks resolved)."""
    normal = normalised_absolute(path, what)
    if not allowed_roots:
        raise PathRefused("your account has no project dirs: ask an admin to set project_dirs")
    real = os.path.realpath(normal)
    for root in allowed_roots:
        root_normal = os.path.normpath(root)
        if _inside(normal, root_normal) and _inside(real, os.path.realpath(root_normal)):
            return normal
    raise PathRefused(
        f"{what} {normal!r} is outside your project dirs ({', '.join(allowed_roots)})"
    )


def check_under(url: str, zarr_dir: str, what: str = "zarr_url") -> str:
    """An image URL must lie strictly below its dataset's zarr_dir."""
    normal = normalised_absolute(url, what)
    if normal == zarr_dir or not _inside(normal, zarr_dir):
        raise PathRefused(f"{what} {normal!r} is not inside the dataset's zarr_dir {zarr_dir!r}")
    return normal
