"""What the pixi routes do: check the request, keep the archive, record a pending activity.

A pixi task package arrives as `<name>-<version>.tar.gz` (a folder of that name holding a
`pyproject.toml` with a pixi workspace and, usually, its `pixi.lock`). The route keeps the
archive in the new task group's folder (Fractal's `archive_path`), so that the collector
and, later, an admin's reset build the environment from the very same file. The work
itself (pixi install) is done by a runner's collector: see `pixi.py`.
"""

from __future__ import annotations

import asyncio
import json
import tarfile
from pathlib import Path

from pydantic import ValidationError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from ...models import Resource, TaskGroup, TaskGroupActivity, UserOAuth
from ...models.task import ActivityAction, ActivityStatus, TaskGroupOrigin
from ...schemas.resource import PixiConfig
from ...schemas.task_collection import CollectRequestError, package_name, package_version
from ..errors import InvalidError, TooLargeError
from ..tasks import check_not_duplicate
from .collect import group_folder
from .files import make_folder
from .start import UPLOAD_CHUNK, _activity, _check_no_activity, _forget_folder
from .upload import Upload

ARCHIVE_SUFFIX = ".tar.gz"
# A workspace's sources are small: a larger archive would only fill the disk when unpacked.
MAX_UNPACKED_BYTES = 4 * 1024**3
MAX_MEMBERS = 100_000
# Beside the archive: how the next install runs (what the request asked), read by the worker.
OPTIONS_FILE = "pixi-install.json"
# Fractal's own words, which its clients show as they are.
PIXI_UNAVAILABLE = "Pixi task collection is not available."


class PixiRequestError(InvalidError, ValueError):
    """The request cannot be served; the message says why (a 422)."""


def _check_resource(resource: Resource) -> None:
    if resource.type == "slurm_ssh":
        raise InvalidError(
            f"resource {resource.name!r} is reached over SSH: collecting pixi packages there "
            "is not supported yet; collect the package as a wheel (pip), or ask an admin to "
            "install it on the cluster and register it with task collect-custom",
        )


def pixi_config(resource: Resource) -> PixiConfig:
    """The resource's pixi configuration; PixiRequestError when it has none (or a broken one)."""
    if not resource.tasks_pixi_config:
        raise PixiRequestError(PIXI_UNAVAILABLE)
    try:
        return PixiConfig.model_validate(resource.tasks_pixi_config)
    except ValidationError:
        raise PixiRequestError(
            f"the pixi configuration of resource {resource.name!r} is not valid: tell an admin"
        ) from None


def choose_pixi_version(resource: Resource, requested: str | None) -> str:
    """The pixi version to install with: the requested one, or the resource's default."""
    config = pixi_config(resource)
    if requested is None:
        return config.default_version
    if requested not in config.versions:
        raise PixiRequestError(
            f"pixi {requested[:80]!r} is not available on resource {resource.name!r}; "
            f"available versions: {sorted(config.versions)}"
        )
    return requested


def archive_name(filename: str | None) -> tuple[str, str, str]:
    """(package name, version, top folder) of `<name>-<version>.tar.gz`, as Fractal reads it."""
    filename = filename or ""
    if not filename.endswith(ARCHIVE_SUFFIX):
        raise PixiRequestError(f"the file {filename[:120]!r} is not a .tar.gz archive")
    top = filename.removesuffix(ARCHIVE_SUFFIX)
    parts = top.split("-")
    if len(parts) != 2:
        raise PixiRequestError(
            f"the file name {filename[:120]!r} must be '<package>-<version>.tar.gz', with a "
            "single '-' between the package name and its version"
        )
    try:
        name = package_name(parts[0], "the package name of the archive")
        version = package_version(parts[1], "the version of the archive")
    except CollectRequestError as error:
        raise PixiRequestError(str(error)) from None
    return name, version, top


async def _save_archive(upload: Upload, target: Path, top: str, max_bytes: int) -> None:
    """Write the upload to `target`: 413 past the limit, 422 unless it holds top/pyproject.toml."""
    size = 0
    with target.open("wb") as handle:
        while chunk := await upload.read(UPLOAD_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise TooLargeError(f"the archive is larger than {max_bytes} bytes")
            await asyncio.to_thread(handle.write, chunk)
    problem = await asyncio.to_thread(archive_problem, target, top)
    if problem:
        raise InvalidError(f"{target.name} is not a usable pixi package: {problem}")


def archive_problem(path: Path, top: str) -> str | None:
    """Why the archive cannot be a pixi task package, or None."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = []
            for member in archive:
                members.append(member)
                if len(members) > MAX_MEMBERS:
                    return f"it holds more than {MAX_MEMBERS} files"
    except (tarfile.TarError, OSError, EOFError) as error:
        return f"it is not a gzip-compressed tar archive ({error})"
    if sum(member.size for member in members) > MAX_UNPACKED_BYTES:
        return f"its files add up to more than {MAX_UNPACKED_BYTES} bytes"
    if f"{top}/pyproject.toml" not in {member.name.removeprefix("./") for member in members}:
        return f"it has no {top}/pyproject.toml"
    return None


def write_install_options(folder: str, *, use_pixi_lockfile: bool) -> None:
    (Path(folder) / OPTIONS_FILE).write_text(json.dumps({"use_pixi_lockfile": use_pixi_lockfile}))


async def start_pixi_collection(
    session: AsyncSession,
    user: UserOAuth,
    resource: Resource,
    upload: Upload,
    *,
    pixi_version: str | None,
    use_pixi_lockfile: bool,
    user_group_id: int | None,
    max_bytes: int,
) -> TaskGroupActivity:
    """POST /api/v2/task/collect/pixi/ once the form is read: a group and a pending activity."""
    assert user.id is not None
    _check_resource(resource)
    version_of_pixi = choose_pixi_version(resource, pixi_version)
    pkg_name, version, top = archive_name(upload.filename)
    await check_not_duplicate(session, user.id, pkg_name, version, user_group_id=user_group_id)
    path = group_folder(resource.tasks_local_dir, user.id, pkg_name, version)
    clash = (await session.exec(select(TaskGroup.id).where(TaskGroup.path == path))).first()
    if clash is not None:
        raise InvalidError(f"task group {clash} already uses the folder {path}")
    try:
        await asyncio.to_thread(make_folder, path)
    except FileExistsError:
        raise InvalidError(f"the folder {path} already exists on the server") from None
    except OSError as error:
        raise InvalidError(f"cannot create {path}: {error.strerror}") from None
    try:
        archive = Path(path) / f"{top}{ARCHIVE_SUFFIX}"
        await _save_archive(upload, archive, top, max_bytes)
        await asyncio.to_thread(write_install_options, path, use_pixi_lockfile=use_pixi_lockfile)
        group = TaskGroup(
            user_id=user.id,
            user_group_id=user_group_id,
            resource_id=resource.id,
            origin=TaskGroupOrigin.PIXI,
            pkg_name=pkg_name,
            version=version,
            pixi_version=version_of_pixi,
            path=path,
            archive_path=str(archive),
        )
        session.add(group)
        await session.flush()
        activity = _activity(group, ActivityAction.COLLECT, status=ActivityStatus.PENDING)
        session.add(activity)
        await session.commit()
    except BaseException:
        await asyncio.to_thread(_forget_folder, path, resource.tasks_local_dir)
        raise
    await session.refresh(activity)
    return activity


async def start_pixi_reset(
    session: AsyncSession, group: TaskGroup, *, use_pixi_lockfile: bool
) -> TaskGroupActivity:
    """An admin's reset of a pixi task group: its environment rebuilt from its archive.

    As in Fractal, only an inactive group is reset (deactivate it first); the activity is
    the owner's. The collector runs `pixi.reinstall_pixi` for it.
    """
    assert group.id is not None
    if group.origin != TaskGroupOrigin.PIXI:
        raise InvalidError(f"task group {group.id} has origin {group.origin!r} (expected pixi)")
    if group.active:
        raise InvalidError(f"task group {group.id} is active: deactivate it before resetting it")
    await _check_no_activity(session, group)
    resource = await session.get(Resource, group.resource_id) if group.resource_id else None
    if resource is None:
        raise InvalidError(f"task group {group.id} has no compute resource any more")
    _check_resource(resource)
    choose_pixi_version(resource, group.pixi_version)
    if not group.path or not group.archive_path or not Path(group.archive_path).is_file():
        raise InvalidError(f"task group {group.id} has no archive to rebuild its environment from")
    await asyncio.to_thread(write_install_options, group.path, use_pixi_lockfile=use_pixi_lockfile)
    activity = _activity(group, ActivityAction.RESET, status=ActivityStatus.PENDING)
    session.add(activity)
    await session.commit()
    await session.refresh(activity)
    return activity
