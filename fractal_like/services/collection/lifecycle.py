"""Deactivate, reactivate, reset and delete a collected task group (in the background).

Deactivating removes the venv and keeps its `pip freeze` (and, for a wheel, the wheel in
the group's folder), so reactivating rebuilds the same environment, offline if need be.
Resetting (an admin's way out when that freeze no longer installs) rebuilds it from the
package itself instead, as a collection does, with the pins and extras the admin set.
"""

from __future__ import annotations

import contextlib
from pathlib import PurePosixPath

from ...models import TaskGroup
from ...models.task import TaskGroupOrigin
from .collect import install_package, python_of
from .context import ActivityRun, GroupView, check_unused, delete_group_rows, load, place_of
from .files import UnsafeRemovalError
from .place import Place, StepFailedError
from .python import pip_options
from .start import WITH_FILES
from .venv import Venv, requirements_from_freeze

COLLECTED = (TaskGroupOrigin.PYPI, TaskGroupOrigin.WHEEL_FILE)


async def _set_active(run: ActivityRun, active: bool, **changes: object) -> None:
    async with run.factory() as session:
        group = await session.get(TaskGroup, run.group_id)
        if group is None:
            raise StepFailedError(f"task group {run.group_id} no longer exists")
        group.active = active
        for key, value in changes.items():
            setattr(group, key, value)
        await session.commit()


async def _remove(place: Place, path: str, *, tidy_parents: bool = False) -> bool:
    try:
        return await place.remove_folder(path, tidy_parents=tidy_parents)
    except (UnsafeRemovalError, OSError, StepFailedError) as error:
        raise StepFailedError(f"could not remove {path}: {error}") from None


# --- Deactivate -------------------------------------------------------------------------------


async def deactivate(run: ActivityRun) -> None:
    view = await load(run)
    group = view.group
    if group.origin not in COLLECTED or not group.venv_path or not group.path:
        await run.log.add(f"task group {group.id} has no environment of ours: nothing to remove")
        return
    place = place_of(run, view)
    venv_path = group.venv_path
    if not await place.exists(venv_path):
        await run.log.add(f"{venv_path} is already gone")
        return
    freeze = group.pip_freeze
    if freeze:
        await run.log.add("the pip freeze recorded at collection is kept for reactivation")
    else:
        venv = Venv(
            PurePosixPath(venv_path),
            pip_options(view.resource),
            run.log.add,
            place,
            cwd=PurePosixPath(group.path),
        )
        try:
            freeze = await venv.freeze()
        except StepFailedError as error:
            raise StepFailedError(
                f"cannot record the installed packages ({error}), so the environment is kept "
                "and the task group stays active"
            ) from None
    await _set_active(run, False, pip_freeze=freeze)
    run.touched = True
    await _remove(place, venv_path)
    await run.log.add(f"removed {venv_path}; the pip freeze is kept, so reactivate can rebuild it")


async def undo_deactivate(run: ActivityRun) -> None:
    if run.touched:
        await run.log.add("the environment may be partly removed: reactivate to rebuild it")
        return
    await _set_active(run, True)
    await run.log.add("the environment is untouched: the task group is active again")


# --- Reactivate -------------------------------------------------------------------------------


async def _fresh_venv(run: ActivityRun, view: GroupView) -> Venv:
    """An empty venv at the group's venv_path (a leftover one removed first), for a rebuild."""
    group, resource = view.group, view.resource
    assert group.venv_path and group.path  # callers checked: a collected group has both
    place = place_of(run, view)
    if await place.exists(group.venv_path):
        await run.log.add(f"removing the leftover {group.venv_path}")
        await _remove(place, group.venv_path)
    try:
        await place.make_folder(group.path, exclusive=False)
    except OSError as error:
        raise StepFailedError(f"cannot create {group.path}: {error}") from None
    run.touched = True
    venv = Venv(
        PurePosixPath(group.venv_path),
        pip_options(resource),
        run.log.add,
        place,
        cwd=PurePosixPath(group.path),
    )
    await venv.create(python_of(view))
    return venv


async def reactivate(run: ActivityRun) -> None:
    view = await load(run)
    group = view.group
    if group.origin not in COLLECTED or not group.venv_path or not group.path:
        await _set_active(run, True)
        await run.log.add(f"task group {group.id} has no environment of ours: set active")
        return
    if not group.pip_freeze:
        raise StepFailedError(
            f"task group {group.id} has no pip freeze to rebuild its environment from"
        )
    venv = await _fresh_venv(run, view)
    await venv.install(
        "reinstalling the recorded packages (pip freeze)",
        requirements_from_freeze(group.pip_freeze),
        "--no-deps",  # the freeze lists every package already: nothing to resolve
    )
    installed = await venv.find_manifest(group.pkg_name)
    await _set_active(run, True)
    await run.log.add(f"{installed.name} {installed.version} is installed again: active")


async def undo_reactivate(run: ActivityRun) -> None:
    if not run.touched:
        return
    view = await load(run)
    place = place_of(run, view)
    if view.group.venv_path and await place.exists(view.group.venv_path):
        await _remove(place, view.group.venv_path)
        await run.log.add(f"removed the unfinished {view.group.venv_path}")
    await run.log.add("the task group stays inactive")


# --- Reset (pip) -----------------------------------------------------------------------------


async def reset(run: ActivityRun) -> None:
    view = await load(run)
    group = view.group
    if group.origin not in COLLECTED or not group.venv_path or not group.path:
        raise StepFailedError(
            f"task group {group.id} (origin {group.origin!r}) has no pip environment to reset"
        )
    venv = await _fresh_venv(run, view)
    await install_package(venv, group)
    installed = await venv.find_manifest(group.pkg_name)
    freeze = await venv.freeze()
    await _set_active(run, True, pip_freeze=freeze)
    await run.log.add(f"{installed.name} {installed.version} is installed afresh: active")


# --- Delete -----------------------------------------------------------------------------------


async def delete(run: ActivityRun) -> None:
    view = await load(run)
    group = view.group
    assert group.id is not None
    async with run.factory() as session:
        await check_unused(session, group.id, run.user_id)
    if group.origin in WITH_FILES and group.path:
        place = place_of(run, view)
        run.touched = True
        if await _remove(place, group.path):
            await run.log.add(f"removed {group.path}")
        # Its parents (package, user) go too when nothing else is left in them.
        with contextlib.suppress(StepFailedError):
            await _remove(place, group.path, tidy_parents=True)
    async with run.factory() as session:
        await delete_group_rows(session, group.id)
    await run.log.add(f"deleted task group {group.id} and its tasks")


async def undo_delete(run: ActivityRun) -> None:
    if run.touched:
        await _set_active(run, False)
        await run.log.add("its folder may be partly removed: the task group is now inactive")
