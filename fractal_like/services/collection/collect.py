"""Collecting a task package: venv, pins before, the package, pins after, manifest, tasks.

On failure `undo_collect` removes the folder and the task group, so that nothing
half-installed stays behind and the same collection can simply be asked for again.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import or_
from sqlmodel import col, select, update

from ...models import Resource, TaskGroup, TaskGroupActivity
from ...models.task import TaskGroupOrigin
from ...schemas.task import Manifest
from ...schemas.task_collection import CollectRequestError, package_version
from ..tasks import ManifestError, build_tasks, visible_to
from .context import ActivityRun, GroupView, delete_group_rows, load
from .files import UnsafeRemovalError, make_folder, remove_folder
from .python import PythonChoice, PythonNotAvailableError, choose_python, pip_options
from .venv import StepFailedError, Venv

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
    python = python_of(view)
    pip = pip_options(resource)
    if group.version is None:
        group = await _resolve_version(run, view, python)
    assert group.path is not None and group.venv_path is not None
    folder = Path(group.path)
    await run.log.add(
        f"collecting {group.pkg_name} {group.version} with Python {python.version} into {folder}"
    )
    venv = Venv(Path(group.venv_path), pip, run.log.add, cwd=folder, confine=run.private_paths)
    await venv.create(python)
    await install_package(venv, group)
    installed = await venv.find_manifest(group.pkg_name)
    manifest = await asyncio.to_thread(_read_manifest, installed.manifest)
    root = str(installed.manifest.parent)
    try:
        tasks = build_tasks(manifest, str(venv.python), root, group.version)
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


def _read_manifest(path: Path) -> Manifest:
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise StepFailedError(f"{path} is larger than {MAX_MANIFEST_BYTES} bytes")
        return Manifest.model_validate_json(path.read_bytes())
    except OSError as error:
        raise StepFailedError(f"cannot read {path}: {error}") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'manifest'}: {item['msg']}"
            for item in error.errors(include_url=False)[:10]
        )
        raise StepFailedError(
            f"{path.name} is not a valid Fractal manifest (v2): {problems}"
        ) from None


async def _resolve_version(run: ActivityRun, view: GroupView, python: PythonChoice) -> TaskGroup:
    """For `package` without a version: ask pip, in a throw-away venv, which it would install."""
    group, resource = view.group, view.resource
    tasks_root = Path(resource.tasks_local_dir)
    await asyncio.to_thread(tasks_root.mkdir, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".resolve-", dir=tasks_root))
    try:
        probe = Venv(
            staging / "venv",
            pip_options(resource),
            run.log.add,
            cwd=staging,
            confine=run.private_paths,
        )
        await probe.create(python)
        found = await probe.resolve_version(requirement(group, with_version=False))
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
    try:
        version = package_version(found, "the version pip chose")
    except CollectRequestError as error:
        raise StepFailedError(str(error)) from None
    await run.log.add(f"pip would install {group.pkg_name} {version}")
    path = group_folder(resource.tasks_local_dir, group.user_id, group.pkg_name, version)
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
        try:
            await asyncio.to_thread(make_folder, path)
        except FileExistsError:
            run.keep_folder = True
            raise StepFailedError(f"the folder {path} already exists on the server") from None
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
        root = resource.tasks_local_dir if resource is not None else None
    if path and not run.keep_folder:
        try:
            if root is None:
                raise UnsafeRemovalError("its resource no longer exists")
            if await asyncio.to_thread(remove_folder, path, root):
                await run.log.add(f"removed {path}")
        except (UnsafeRemovalError, OSError) as error:
            await run.log.add(f"could not remove {path}: {error}")
    async with run.factory() as session:
        await delete_group_rows(session, group_id)
    await run.log.add(f"removed task group {group_id}: the collection can be asked for again")
