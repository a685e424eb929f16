"""What the collector runs for each task-group activity: the work, and how to undo it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ...models import TaskGroup
from ...models.task import ActivityAction, TaskGroupOrigin
from ...services.collection import collect, lifecycle, pixi
from ...services.collection.context import ActivityRun

Work = Callable[[ActivityRun], Awaitable[None]]


def _by_origin(pip_work: Work, pixi_work: Work) -> Work:
    """Work done by pixi for a pixi task group, by pip (and venv) for the others."""

    async def work(run: ActivityRun) -> None:
        async with run.factory() as session:
            group = await session.get(TaskGroup, run.group_id) if run.group_id else None
            origin = group.origin if group is not None else None
        await (pixi_work if origin == TaskGroupOrigin.PIXI else pip_work)(run)

    return work


# action -> (work, undo)
PIPELINES: dict[str, tuple[Work, Work]] = {
    # A failed pixi collection is undone as a pip one: its folder and its group removed.
    ActivityAction.COLLECT: (_by_origin(collect.collect, pixi.collect_pixi), collect.undo_collect),
    ActivityAction.DEACTIVATE: (
        _by_origin(lifecycle.deactivate, pixi.deactivate_pixi),
        lifecycle.undo_deactivate,
    ),
    ActivityAction.REACTIVATE: (
        _by_origin(lifecycle.reactivate, pixi.reactivate_pixi),
        _by_origin(lifecycle.undo_reactivate, pixi.undo_reinstall_pixi),
    ),
    ActivityAction.DELETE: (lifecycle.delete, lifecycle.undo_delete),
    # A reset that fails is undone as a reactivation is: no half-built venv, still inactive.
    ActivityAction.RESET: (
        _by_origin(lifecycle.reset, pixi.reinstall_pixi),
        _by_origin(lifecycle.undo_reactivate, pixi.undo_reinstall_pixi),
    ),
}
# Work that is safe to do again from the start after an interruption.
RESUMABLE = (ActivityAction.DEACTIVATE, ActivityAction.DELETE)
