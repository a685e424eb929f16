"""Collecting a task package: venv, pins before, the package, pins after, manifest, tasks.

On failure `undo_collect` removes the folder and the task group, so that nothing
half-installed stays behind and the same collection can simply be asked for again.
The folder is at the group's place (place.py): on this machine, or for a slurm_ssh
resource on the login node, as the owner's cluster user, under their tasks_remote_dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from pydantic import ValidationError
from sqlalchemy import or_
from sqlmodel import col, select, update

from ...models import Resource, TaskGroup, TaskGroupActivity
from ...models.task import TaskGroupOrigin
from ...schemas.task import Manifest
from ...schemas.task_collection import CollectRequestError, package_version
from ..tasks import ManifestError, build_tasks, visible_to
from .context import (
    ActivityRun,
    GroupView,
    delete_group_rows,
    load,
    owner_profile,
    place_for,
    place_of,
)
from .files import UnsafeRemovalError, remove_folder
from .place import Place, StepFailedError, read_limited
from .python import PythonChoice, PythonNotAvailableError, choose_python, pip_options
from .venv import Venv

MAX_MANIFEST_BYTES = 5_000_000


def group_folder(tasks_root: str, user_id: int, pkg_name: str, version: str) -> str:
    return str(Path(tasks_root) / str(user_id) / pkg_name / version)


def requirement(group: TaskGroup, *, with_version: bool = True) -> str:
    """What pip installs: `pkg[extras]==version`, or the wheel file (with its extras)."""
    extras = f"[{group.pip_extras}]" if group.pip_extras else ""
    if group.origin == TaskGroupOrigin.WHEEL_FILE:
        assert group.wheel_path is not None
        return f"{group.wheel_path}{extras}"
    version = f"=={group.version}" if with_version and group.version else ""
    return f"{group.pkg_name}{extras}{version}"


def _pins(pins: dict[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in pins.items()]


def python_of(view: GroupView) -> PythonChoice:
    try:
        return choose_python(view.resource, view.group.python_version)
    except PythonNotAvailableError as error:
        raise StepFailedError(str(error)) from None


async def install_package(venv: Venv, group: TaskGroup) -> None:
    """Into a new venv: the pins before the package, the package, the pins after it."""
    if group.pinned_package_versions_pre:
        await venv.install(
            "installing the versions pinned before the package",
            _pins(group.pinned_package_versions_pre),
        )
    await venv.install(f"installing {requirement(group)}", [requirement(group)])
    if group.pinned_package_versions:
        await venv.install(
            "installing the versions pinned after the package",
            _pins(group.pinned_package_versions),
        )


async def collect(run: ActivityRun) -> None:
    view = await load(run)
    group, resource = view.group, view.resource
    place = place_of(run, view)
    python = python_of(view)
    pip = pip_options(resource)
    if group.version is None:
        group = await _resolve_version(run, view, place, python)
    elif place.remote:
        # Here the route made the folder; on a login node it is made now, as its user.
        assert group.path is not None
        await _new_folder(run, place, group.path)
    assert group.path is not None and group.venv_path is not None
    folder = PurePosixPath(group.path)
    await run.log.add(
        f"collecting {group.pkg_name} {group.version} with Python {python.version} into "
        f"{folder}" + (f" on {place.where}" if place.remote else "")
    )
    await _send_upload(run, place, resource, group)
    venv = Venv(PurePosixPath(group.venv_path), pip, run.log.add, place, cwd=folder)
    await venv.create(python)
    await install_package(venv, group)
    installed = await venv.find_manifest(group.pkg_name)
    manifest = await read_manifest(place, installed.manifest)
    root = str(installed.manifest.parent)
    found = await _executables_found(place, manifest, root)
    try:
        tasks = build_tasks(manifest, str(venv.python), root, group.version, is_file=found)
    except ManifestError as error:
        raise StepFailedError(f"the manifest does not fit the package: {error}") from None
    freeze = await venv.freeze()
    async with run.factory() as session:
        saved = await session.get(TaskGroup, group.id)
        if saved is None:
            raise StepFailedError(f"task group {group.id} was removed during the collection")
        saved.pip_freeze = freeze
        for task in tasks:
            task.taskgroupv2_id = saved.id or 0
            session.add(task)
        await session.commit()
    names = ", ".join(task.name for task in tasks)
    await run.log.add(f"registered {len(tasks)} task(s) from {installed.manifest}: {names}")


async def _new_folder(run: ActivityRun, place: Place, path: str) -> None:
    """The group's folder, made by this collection (never one that was there before)."""
    try:
        await place.make_folder(path, exclusive=True)
    except FileExistsError:
        run.keep_folder = True
        raise StepFailedError(f"the folder {path} already exists on {place.where}") from None
    except OSError as error:
        raise StepFailedError(f"cannot create {path} on {place.where}: {error}") from None


def upload_folder(resource: Resource, group: TaskGroup) -> str | None:
    """Where the route keeps an uploaded wheel: the group's folder on this machine; for a
    group on a login node, a folder of the same name under the resource's tasks_local_dir,
    until the collector has copied the wheel there."""
    if group.version is None:
        return None
    return group_folder(resource.tasks_local_dir, group.user_id, group.pkg_name, group.version)


async def _send_upload(
    run: ActivityRun, place: Place, resource: Resource, group: TaskGroup
) -> None:
    staging = upload_folder(resource, group)
    if group.wheel_path is None or staging is None or staging == group.path:
        return  # nothing uploaded, or it is in the group's folder already
    local = Path(staging) / PurePosixPath(group.wheel_path).name
    await run.log.add(f"copying {local.name} to {place.where} (SFTP)")
    await place.put(local, group.wheel_path)
    await forget_upload(resource, group)


async def forget_upload(resource: Resource, group: TaskGroup) -> None:
    """Remove the server's copy of an upload meant for a login node, if there is one."""
    staging = upload_folder(resource, group)
    if staging is not None and staging != group.path:
        with contextlib.suppress(UnsafeRemovalError, OSError):
            await asyncio.to_thread(remove_folder, staging, resource.tasks_local_dir)


async def _executables_found(place: Place, manifest: Manifest, root: str) -> Callable[[str], bool]:
    """Which of the manifest's executables are files under root, at the venv's place."""
    wanted = {
        posixpath.join(root, executable)
        for item in manifest.task_list
        for executable in (item.executable_non_parallel, item.executable_parallel)
        if executable is not None
    }
    found = {path for path in wanted if await place.exists(path)}
    return found.__contains__


async def read_manifest(place: Place, path: PurePosixPath) -> Manifest:
    """The manifest at its place (over SFTP on a login node), at most MAX_MANIFEST_BYTES."""
    return parse_manifest(path.name, await place.read_bytes(str(path), MAX_MANIFEST_BYTES))


def _read_manifest(path: Path) -> Manifest:
    return parse_manifest(path.name, read_limited(str(path), MAX_MANIFEST_BYTES))


def parse_manifest(name: str, data: bytes) -> Manifest:
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'manifest'}: {item['msg']}"
            for item in error.errors(include_url=False)[:10]
        )
        raise StepFailedError(f"{name} is not a valid Fractal manifest (v2): {problems}") from None


async def _resolve_version(
    run: ActivityRun, view: GroupView, place: Place, python: PythonChoice
) -> TaskGroup:
    """For `package` without a version: ask pip, in a throw-away venv, which it would install."""
    group, resource = view.group, view.resource
    staging = posixpath.join(place.root, f".resolve-{uuid.uuid4().hex[:12]}")
    await place.make_folder(staging, exclusive=True)
    try:
        probe = Venv(
            PurePosixPath(staging) / "venv",
            pip_options(resource),
            run.log.add,
            place,
            cwd=PurePosixPath(staging),
        )
        await probe.create(python)
        found = await probe.resolve_version(requirement(group, with_version=False))
    finally:
        with contextlib.suppress(UnsafeRemovalError, OSError, StepFailedError):
            await place.remove_folder(staging, tidy_parents=False)
    try:
        version = package_version(found, "the version pip chose")
    except CollectRequestError as error:
        raise StepFailedError(str(error)) from None
    await run.log.add(f"pip would install {group.pkg_name} {version}")
    path = group_folder(place.root, group.user_id, group.pkg_name, version)
    async with run.factory() as session:
        where = visible_to(group.user_id)
        if group.user_group_id is not None:
            where = or_(where, col(TaskGroup.user_group_id) == group.user_group_id)
        clash = (
            await session.exec(
                select(TaskGroup.id).where(
                    where,
                    TaskGroup.pkg_name == group.pkg_name,
                    TaskGroup.version == version,
                    col(TaskGroup.id) != group.id,
                )
            )
        ).first()
        if clash is not None:
            run.keep_folder = True
            raise StepFailedError(
                f"task group {clash} already provides {group.pkg_name} {version} to you"
            )
        await _new_folder(run, place, path)
        saved = await session.get(TaskGroup, group.id)
        assert saved is not None
        saved.version = version
        saved.path = path
        saved.venv_path = str(Path(path) / "venv")
        await session.exec(
            update(TaskGroupActivity)
            .where(col(TaskGroupActivity.id) == run.activity_id)
            .values(version=version)
        )
        await session.commit()
        await session.refresh(saved)
        session.expunge(saved)
        return saved


async def undo_collect(run: ActivityRun) -> None:
    """Remove the folder (when it is ours) and the task group with its tasks."""
    async with run.factory() as session:
        group = await session.get(TaskGroup, run.group_id) if run.group_id else None
        if group is None or group.id is None:
            return
        group_id, path = group.id, group.path
        resource = await session.get(Resource, group.resource_id) if group.resource_id else None
        profile = await owner_profile(session, group) if resource is not None else None
        session.expunge_all()
    if path and not run.keep_folder:
        try:
            if resource is None:
                raise UnsafeRemovalError("its resource no longer exists")
            place = place_for(resource, profile, run.ssh, run.private_paths)
            if await place.remove_folder(path, tidy_parents=True):
                await run.log.add(f"removed {path}")
        except (ValueError, OSError, StepFailedError) as error:  # UnsafeRemovalError too
            await run.log.add(f"could not remove {path}: {error}")
    if resource is not None:
        await forget_upload(resource, group)
    async with run.factory() as session:
        await delete_group_rows(session, group_id)
    await run.log.add(f"removed task group {group_id}: the collection can be asked for again")
