"""Checks the Fractal web client makes before submitting a job, on a dataset's images.

- `non_unique_types`: the type keys whose value differs among the images a query selects
  (an image without the key counts as false), so that the user can narrow the query;
- `unprocessed_images`: the images that a workflow task would receive but that the task
  before it has not processed successfully (their latest unit for it is not `done`).

Both are set-based queries, whatever the number of images.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, true
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Image, Task, WorkflowTask
from ..models.history import UnitStatus
from ..schemas.dataset import ImageFilters
from . import images as image_service
from .history import image_status_column, status_filters, with_latest_unit

# Task types that make images from nothing: the task after them has nothing to wait for.
_CONVERTERS = ("converter_non_parallel", "converter_compound")


async def non_unique_types(
    session: AsyncSession, dataset_id: int, workflowtask_id: int, filters: ImageFilters
) -> list[str]:
    """Sorted type keys that are true for some selected images and not for others.

    `filters` may select by IMAGE_STATUS_KEY, the status for `workflowtask_id`.
    """
    where, needs_status = status_filters(session, dataset_id, filters)

    def over_images(query: Any) -> Any:
        return with_latest_unit(query, workflowtask_id) if needs_status else query

    total = (
        await session.exec(over_images(select(func.count()).select_from(Image)).where(*where))
    ).one()
    if session.get_bind().dialect.name == "postgresql":
        pairs = func.jsonb_each_text(Image.types).table_valued("key", "value").alias("t")
        is_true = pairs.c.value == "true"
    else:
        pairs = func.json_each(Image.types).table_valued("key", "value", "type").alias("t")
        is_true = pairs.c.type == "true"
    trues = func.sum(case((is_true, 1), else_=0))
    rows = await session.execute(
        over_images(select(pairs.c.key, trues).select_from(Image))
        .join(pairs, true())
        .where(*where)
        .group_by(pairs.c.key)
    )
    return sorted(key for key, n_true in rows.all() if 0 < n_true < total)


async def previous_task_to_check(
    session: AsyncSession, wftask: WorkflowTask
) -> WorkflowTask | None:
    """The workflow task before `wftask`, when the images it processed are what `wftask`
    will get; None for the first task, or after a converter or a task that sets types."""
    if wftask.order == 0:
        return None
    row = (
        await session.exec(
            select(WorkflowTask, Task.type, Task.output_types)
            .join(Task, col(Task.id) == WorkflowTask.task_id)
            .where(
                WorkflowTask.workflow_id == wftask.workflow_id,
                WorkflowTask.order == wftask.order - 1,
            )
        )
    ).first()
    if row is None:
        return None
    previous, task_type, output_types = row
    if output_types or task_type in _CONVERTERS:
        return None
    return previous


async def unprocessed_images(
    session: AsyncSession, dataset_id: int, previous_wftask_id: int, filters: ImageFilters
) -> list[str]:
    """zarr_urls of the images passing `filters` whose latest unit of the previous task is
    not `done` (never processed, submitted, or failed), in the order they were added."""
    dialect = session.get_bind().dialect.name
    # Plain filters: the images themselves carry no status attribute.
    where = image_service.filter_clauses(
        dialect, filters.type_filters, filters.attribute_filters, dataset_id
    )
    rows = await session.exec(
        with_latest_unit(select(Image.zarr_url), previous_wftask_id)
        .where(Image.dataset_id == dataset_id, *where)
        .where(image_status_column() != UnitStatus.DONE.value)
        .order_by(col(Image.id))
    )
    return list(rows.all())
