"""Reading provenance: workflow-task statuses, runs, units, image statuses, logs, progress.

Every read is a fixed handful of set-based queries on indexed foreign keys, whatever the
number of workflow tasks, runs, units or images. Only the runner writes these tables.

Our units may be `running`; Fractal's vocabulary has submitted/done/failed only, so
anything that has not ended is reported as `submitted`.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

import anyio.to_thread
from sqlalchemy import ColumnElement, and_, case, true
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import (
    ACTIVE_JOB_STATUSES,
    HistoryImageCache,
    HistoryRun,
    HistoryUnit,
    Image,
    Job,
    Task,
    UnitStatus,
    WorkflowTask,
)
from ..schemas.dataset import ImageFilters
from ..schemas.history import (
    IMAGE_STATUS_KEY,
    HistoryRunReadAggregated,
    HistoryUnitRead,
    ImageStatus,
    JobProgress,
    Page,
    StatusImage,
    StatusImagePage,
    TaskProgress,
    WorkflowTaskStatus,
)
from . import images as image_service
from .access import get_or_404
from .errors import InvalidError, NotFoundError

# A log bigger than this is returned by its end, which is where errors are.
MAX_LOG_BYTES = 5 * 1024 * 1024
_CHUNK = 1024 * 1024


def fractal_status(status: str | None) -> str:
    """A unit status in Fractal's words: anything not ended yet is `submitted`."""
    if status in (UnitStatus.DONE, UnitStatus.FAILED):
        return str(status)
    return UnitStatus.SUBMITTED.value


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def run_of(
    session: AsyncSession, history_run_id: int, dataset_id: int, workflowtask_id: int
) -> HistoryRun:
    run = await get_or_404(session, HistoryRun, history_run_id, "history run")
    if run.dataset_id != dataset_id or run.workflowtask_id != workflowtask_id:
        raise InvalidError(
            f"history run {history_run_id} is not a run of workflow task "
            f"{workflowtask_id} on dataset {dataset_id}",
        )
    return run


# --- GET status/ ---------------------------------------------------------------------------


async def workflow_statuses(
    session: AsyncSession, workflow_id: int, dataset_id: int
) -> dict[int, WorkflowTaskStatus | None]:
    """Per workflow task: the latest run's status and its images by status, or None.

    A task that an active job will run (or is running) shows `submitted` until that job's
    own run of it exists; image counters then come from the latest unit of each image.
    """
    wftasks = (
        await session.exec(
            select(WorkflowTask.id, WorkflowTask.task_type)
            .where(WorkflowTask.workflow_id == workflow_id)
            .order_by(col(WorkflowTask.order))
        )
    ).all()
    ids = [wftask_id for wftask_id, _ in wftasks if wftask_id is not None]
    if not ids:
        return {}
    active = (
        await session.exec(
            select(Job)
            .where(
                Job.dataset_id == dataset_id,
                Job.workflow_id == workflow_id,
                col(Job.status).in_(ACTIVE_JOB_STATUSES),
            )
            .order_by(col(Job.id).desc())
            .limit(1)
        )
    ).first()
    queued = _wftask_ids_of_job(active) if active is not None else set()
    active_id = active.id if active is not None else None
    latest = await _latest_runs(session, dataset_id, ids)
    counts = await _image_counts(session, dataset_id, ids)

    result: dict[int, WorkflowTaskStatus | None] = {}
    for wftask_id, task_type in wftasks:
        assert wftask_id is not None
        run = latest.get(wftask_id)
        queued_here = wftask_id in queued
        if run is None or (queued_here and run["job_id"] != active_id):
            # Not run yet, or only by an earlier job: the active job will (re)run it.
            result[wftask_id] = (
                WorkflowTaskStatus(status=UnitStatus.SUBMITTED) if queued_here else None
            )
            continue
        by_status = counts.get(wftask_id, {})
        # Parallel tasks run one unit per image, so their units are the images they were given.
        available = run["num_units_total"] if task_type == "parallel" else None
        if available is not None and sum(by_status.values()) > available:
            available = None
        result[wftask_id] = WorkflowTaskStatus(
            status=run["status"],
            num_available_images=available,
            num_submitted_images=by_status.get(UnitStatus.SUBMITTED, 0),
            num_done_images=by_status.get(UnitStatus.DONE, 0),
            num_failed_images=by_status.get(UnitStatus.FAILED, 0),
        )
    return result


def _wftask_ids_of_job(job: Job) -> set[int]:
    """The workflow tasks a job runs, from its snapshot (later edits do not change them)."""
    task_list = (job.workflow_dump or {}).get("task_list") or []
    chosen = task_list[job.first_task_index : job.last_task_index + 1]
    return {item["id"] for item in chosen if isinstance(item, dict) and "id" in item}


async def _latest_runs(
    session: AsyncSession, dataset_id: int, wftask_ids: list[int]
) -> dict[int, dict[str, Any]]:
    rank = (
        func.row_number()
        .over(
            partition_by=col(HistoryRun.workflowtask_id),
            order_by=(col(HistoryRun.timestamp_started).desc(), col(HistoryRun.id).desc()),
        )
        .label("rank")
    )
    ranked = (
        select(  # type: ignore[call-overload]  # sqlmodel types select() for 4 columns at most
            HistoryRun.workflowtask_id,
            HistoryRun.job_id,
            HistoryRun.status,
            HistoryRun.num_units_total,
            rank,
        )
        .where(HistoryRun.dataset_id == dataset_id, col(HistoryRun.workflowtask_id).in_(wftask_ids))
        .subquery()
    )
    rows = await session.execute(
        select(
            ranked.c.workflowtask_id, ranked.c.job_id, ranked.c.status, ranked.c.num_units_total
        ).where(ranked.c.rank == 1)
    )
    return {
        wftask_id: {"job_id": job_id, "status": status, "num_units_total": total}
        for wftask_id, job_id, status, total in rows.all()
    }


async def _image_counts(
    session: AsyncSession, dataset_id: int, wftask_ids: list[int]
) -> dict[int, dict[str, int]]:
    rows = await session.execute(
        select(HistoryImageCache.workflowtask_id, HistoryUnit.status, func.count())
        .join(HistoryUnit, col(HistoryUnit.id) == HistoryImageCache.latest_history_unit_id)
        .where(
            HistoryImageCache.dataset_id == dataset_id,
            col(HistoryImageCache.workflowtask_id).in_(wftask_ids),
        )
        .group_by(col(HistoryImageCache.workflowtask_id), col(HistoryUnit.status))
    )
    counts: dict[int, dict[str, int]] = {}
    for wftask_id, status, number in rows.all():
        by_status = counts.setdefault(wftask_id, {})
        key = fractal_status(status)
        by_status[key] = by_status.get(key, 0) + number
    return counts


# --- GET status/run/ and status/run/{id}/units/ ----------------------------------------------


async def runs_aggregated(
    session: AsyncSession, dataset_id: int, workflowtask_id: int
) -> list[HistoryRunReadAggregated]:
    """Every run of a workflow task on a dataset, oldest first, with units counted by status."""
    rows = (
        await session.exec(
            select(
                HistoryRun,
                Task.version,
                Task.args_schema_parallel,
                Task.args_schema_non_parallel,
            )
            .outerjoin(Task, col(Task.id) == HistoryRun.task_id)
            .where(
                HistoryRun.dataset_id == dataset_id,
                HistoryRun.workflowtask_id == workflowtask_id,
            )
            .order_by(col(HistoryRun.timestamp_started), col(HistoryRun.id))
        )
    ).all()
    if not rows:
        return []
    run_ids = [run.id for run, *_ in rows]
    unit_rows = await session.execute(
        select(HistoryUnit.history_run_id, HistoryUnit.status, func.count())
        .where(col(HistoryUnit.history_run_id).in_(run_ids))
        .group_by(col(HistoryUnit.history_run_id), col(HistoryUnit.status))
    )
    counts: dict[int, dict[str, int]] = {run_id: {} for run_id in run_ids if run_id is not None}
    for run_id, status, number in unit_rows.all():
        key = f"num_{fractal_status(status)}_units"
        counts[run_id][key] = counts[run_id].get(key, 0) + number
    result = []
    for run, version, schema_parallel, schema_non_parallel in rows:
        assert run.id is not None
        result.append(
            HistoryRunReadAggregated(
                id=run.id,
                job_id=run.job_id,
                status=run.status,
                timestamp_started=run.timestamp_started,
                timestamp_ended=run.timestamp_ended,
                workflowtask_dump=run.workflowtask_dump,
                version=version,
                args_schema_parallel=schema_parallel,
                args_schema_non_parallel=schema_non_parallel,
                **counts[run.id],
            )
        )
    return result


async def units_page(
    session: AsyncSession,
    history_run_id: int,
    unit_status: UnitStatus | None,
    page: int,
    page_size: int | None,
) -> Page[HistoryUnitRead]:
    where: list[ColumnElement[bool]] = [col(HistoryUnit.history_run_id) == history_run_id]
    if unit_status == UnitStatus.SUBMITTED:
        where.append(col(HistoryUnit.status).not_in((UnitStatus.DONE, UnitStatus.FAILED)))
    elif unit_status is not None:
        where.append(col(HistoryUnit.status) == unit_status.value)
    total = (await session.exec(select(func.count()).select_from(HistoryUnit).where(*where))).one()
    size = page_size or total
    units = (
        await session.exec(
            select(HistoryUnit)
            .where(*where)
            .order_by(col(HistoryUnit.id))
            .offset((page - 1) * size)
            .limit(size)
        )
    ).all()
    return Page[HistoryUnitRead](
        current_page=page,
        page_size=size,
        total_count=total,
        items=[_unit_read(unit) for unit in units],
    )


def _unit_read(unit: HistoryUnit) -> HistoryUnitRead:
    assert unit.id is not None
    return HistoryUnitRead(
        id=unit.id,
        logfile=unit.logfile,
        status=UnitStatus(fractal_status(unit.status)),
        zarr_urls=unit.zarr_urls,
        index=unit.index,
        kind=unit.kind,
        slurm_job_id=unit.slurm_job_id,
        error=unit.error,
        timestamp_started=unit.timestamp_started,
        timestamp_ended=unit.timestamp_ended,
    )


# --- POST status/images/ -------------------------------------------------------------------


def image_status_column() -> Any:
    """Each image's status for one workflow task, from the outer-joined latest unit."""
    return case(
        (col(HistoryUnit.status).is_(None), ImageStatus.UNSET.value),
        (col(HistoryUnit.status) == UnitStatus.DONE.value, UnitStatus.DONE.value),
        (col(HistoryUnit.status) == UnitStatus.FAILED.value, UnitStatus.FAILED.value),
        else_=UnitStatus.SUBMITTED.value,
    )


def with_latest_unit(query: Any, workflowtask_id: int) -> Any:
    """`query` (over Image) outer-joined to each image's latest unit for the workflow task."""
    return query.outerjoin(
        HistoryImageCache,
        and_(
            col(HistoryImageCache.dataset_id) == Image.dataset_id,
            col(HistoryImageCache.workflowtask_id) == workflowtask_id,
            col(HistoryImageCache.zarr_url) == Image.zarr_url,
        ),
    ).outerjoin(HistoryUnit, col(HistoryUnit.id) == HistoryImageCache.latest_history_unit_id)


def status_filters(
    session: AsyncSession, dataset_id: int, filters: ImageFilters
) -> tuple[list[ColumnElement[bool]], bool]:
    """WHERE clauses selecting a dataset's images that pass `filters`, whose
    `attribute_filters` may hold IMAGE_STATUS_KEY; and whether they need `with_latest_unit`.
    """
    attribute_filters = dict(filters.attribute_filters)
    wanted = attribute_filters.pop(IMAGE_STATUS_KEY, None)
    where = [
        col(Image.dataset_id) == dataset_id,
        *image_service.filter_clauses(_dialect(session), filters.type_filters, attribute_filters),
    ]
    if wanted is not None:
        statuses = [value for value in wanted if isinstance(value, str)]
        where.append(image_status_column().in_(statuses))
    return where, wanted is not None


async def images_with_status(
    session: AsyncSession,
    dataset_id: int,
    workflowtask_id: int,
    query: ImageFilters,
    page: int,
    page_size: int | None,
    include_warnings: bool = False,
) -> StatusImagePage:
    """The dataset's images, sorted by zarr_url, each with its status for the workflow task.

    The status is the pseudo-attribute IMAGE_STATUS_KEY, which `attribute_filters` may
    select like any other attribute; `attributes` and `types` summarise the images that
    pass `type_filters`, as Fractal does. With `include_warnings`, each image says whether
    its latest unit's log mentions a warning (`has_warnings`).
    """
    where, needs_status = status_filters(session, dataset_id, query)
    counter = select(func.count()).select_from(Image)
    if needs_status:
        counter = with_latest_unit(counter, workflowtask_id)
    total = (await session.exec(counter.where(*where))).one()
    size = page_size or total
    status = image_status_column().label("status")
    rows = (
        await session.exec(
            with_latest_unit(select(Image, status, HistoryUnit.id), workflowtask_id)
            .where(*where)
            .order_by(col(Image.zarr_url))
            .offset((page - 1) * size)
            .limit(size)
        )
    ).all()
    warned: set[int] | None = None
    if include_warnings:
        warned = await units_with_warnings(session, {unit for *_, unit in rows if unit})
    attributes, types = await _summary(session, dataset_id, query.type_filters)
    attributes[IMAGE_STATUS_KEY] = [
        ImageStatus.DONE.value,
        ImageStatus.SUBMITTED.value,
        ImageStatus.FAILED.value,
        ImageStatus.UNSET.value,
    ]
    return StatusImagePage(
        current_page=page,
        page_size=size,
        total_count=total,
        items=[
            StatusImage(
                zarr_url=image.zarr_url,
                origin=image.origin,
                attributes={**image.attributes, IMAGE_STATUS_KEY: image_status},
                types=image.types,
                has_warnings=None if warned is None else unit in warned,
            )
            for image, image_status, unit in rows
        ],
        attributes=attributes,
        types=types,
    )


async def _summary(
    session: AsyncSession, dataset_id: int, type_filters: dict[str, bool]
) -> tuple[dict[str, list[Any]], list[str]]:
    """Attribute values and type keys of the dataset's images that pass `type_filters`."""
    if not type_filters:
        return await image_service.summary(session, dataset_id)
    dialect = _dialect(session)
    each = func.jsonb_each if dialect == "postgresql" else func.json_each
    where = [
        col(Image.dataset_id) == dataset_id,
        *image_service.filter_clauses(dialect, type_filters, {}),
    ]
    if dialect == "postgresql":
        attrs = each(Image.attributes).table_valued("key", "value").alias("a")
        attr_query = select(attrs.c.key, attrs.c.value, true())
    else:
        attrs = each(Image.attributes).table_valued("key", "value", "type").alias("a")
        attr_query = select(attrs.c.key, attrs.c.value, attrs.c.type.in_(("true", "false")))
    attr_rows = await session.execute(
        attr_query.distinct().select_from(Image).join(attrs, true()).where(*where)
    )
    types = each(Image.types).table_valued("key").alias("t")
    type_rows = await session.execute(
        select(types.c.key).distinct().select_from(Image).join(types, true()).where(*where)
    )
    pairs = [
        (key, bool(value) if is_bool and dialect != "postgresql" else value)
        for key, value, is_bool in attr_rows.all()
    ]
    return _distinct_values(pairs), sorted(row[0] for row in type_rows.all())


def _distinct_values(pairs: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    """Per key, its distinct values (1 and True stay apart), sorted; keys sorted."""
    result: dict[str, list[Any]] = {}
    for key, value in pairs:
        values = result.setdefault(key, [])
        if not any(type(seen) is type(value) and seen == value for seen in values):
            values.append(value)
    for values in result.values():
        values.sort(key=lambda value: (type(value).__name__, value))
    return dict(sorted(result.items()))


# --- GET status/unit-log/ ------------------------------------------------------------------


async def unit_log_source(
    session: AsyncSession,
    history_run_id: int,
    history_unit_id: int,
    dataset_id: int,
    wftask: WorkflowTask,
) -> tuple[str | None, str | None, str]:
    """The unit's log file, its job's working folder, and a label for messages."""
    unit = await get_or_404(session, HistoryUnit, history_unit_id, "history unit")
    if unit.history_run_id != history_run_id:
        raise InvalidError(
            f"history unit {history_unit_id} is not part of history run {history_run_id}",
        )
    assert wftask.id is not None
    run = await run_of(session, history_run_id, dataset_id, wftask.id)
    row = (
        await session.exec(
            select(Job.working_dir, Task.name)
            .select_from(Job)
            .outerjoin(Task, col(Task.id) == wftask.task_id)
            .where(Job.id == run.job_id)
        )
    ).first()
    working_dir, task_name = row if row is not None else (None, None)
    task = task_name or f"#{wftask.task_id}"
    label = f"unit {history_unit_id} of task '{task}' in dataset {dataset_id}"
    return unit.logfile, working_dir, label


async def image_log_source(
    session: AsyncSession, zarr_url: str, dataset_id: int, wftask: WorkflowTask
) -> tuple[str | None, str | None, str]:
    """Like `unit_log_source`, for the unit that last processed an image for the workflow
    task on the dataset; 404 when no unit has."""
    unit = (
        await session.exec(
            select(HistoryUnit)
            .join(
                HistoryImageCache,
                col(HistoryImageCache.latest_history_unit_id) == HistoryUnit.id,
            )
            .where(
                HistoryImageCache.zarr_url == zarr_url,
                HistoryImageCache.dataset_id == dataset_id,
                HistoryImageCache.workflowtask_id == wftask.id,
            )
        )
    ).first()
    if unit is None:
        raise NotFoundError(
            f"image {zarr_url!r} has not been processed by workflow task {wftask.id} "
            f"in dataset {dataset_id}",
        )
    assert unit.id is not None
    return await unit_log_source(session, unit.history_run_id, unit.id, dataset_id, wftask)


async def units_with_warnings(session: AsyncSession, unit_ids: set[int]) -> set[int]:
    """Which of these units have a log that mentions a warning (in any letter case), as
    Fractal flags them. Read from the logs (off the event loop), as they are now."""
    if not unit_ids:
        return set()
    rows = (
        await session.exec(
            select(HistoryUnit.id, HistoryUnit.logfile, Job.working_dir)
            .join(HistoryRun, col(HistoryRun.id) == HistoryUnit.history_run_id)
            .join(Job, col(Job.id) == HistoryRun.job_id)
            .where(col(HistoryUnit.id).in_(sorted(unit_ids)))
        )
    ).all()

    def scan() -> set[int]:
        return {
            unit_id
            for unit_id, logfile, working_dir in rows
            if unit_id is not None and log_mentions_warning(logfile, working_dir)
        }

    return await anyio.to_thread.run_sync(scan)


def log_mentions_warning(logfile: str | None, working_dir: str | None) -> bool:
    try:
        data = _read_log(logfile, working_dir)
    except _LogUnavailableError:
        return False
    return b"warning" in data.lower()


class _LogUnavailableError(Exception):
    """Why a log cannot be shown; the message completes "Logs of <unit> ..."."""


def read_unit_log(logfile: str | None, working_dir: str | None, label: str) -> str:
    """The log's text, or a plain message saying why it is not available."""
    if not logfile:
        return f"No log file was recorded for {label}."
    try:
        data = _read_log(logfile, working_dir)
    except _LogUnavailableError as error:
        return f"Logs of {label} {error}."
    return data.decode("utf-8", errors="replace")


def _read_log(logfile: str | None, working_dir: str | None) -> bytes:
    """A unit log's bytes.

    Only a regular file inside the job's working folder is ever read (symbolic links
    resolved, and checked again on the opened file); a file gone from the folder is looked
    for in `<working_dir>.zip`. A log bigger than MAX_LOG_BYTES is cut to its end.
    """
    if not logfile:
        raise _LogUnavailableError("are not available: no log file was recorded")
    if not working_dir or "\x00" in logfile or "\x00" in working_dir:
        raise _LogUnavailableError("are not available: the job has no working folder")
    root = os.path.realpath(working_dir)
    path = os.path.realpath(os.path.join(working_dir, logfile))  # an absolute logfile wins
    if not path.startswith(root.rstrip("/") + "/"):
        raise _LogUnavailableError("are not available: the log file is outside the job's folder")
    try:
        return _read_regular_file(path, root)
    except FileNotFoundError:
        data = _read_from_zip(os.path.normpath(working_dir) + ".zip", os.path.relpath(path, root))
        if data is None:
            raise _LogUnavailableError(
                f"are not available: the log file {logfile} does not exist"
            ) from None
        return data
    except _NotRegularFileError:
        raise _LogUnavailableError(
            "are not available: the log file is not a regular file"
        ) from None
    except OSError as error:
        raise _LogUnavailableError(f"could not be read ({error.strerror or error})") from None


class _NotRegularFileError(Exception):
    pass


def _read_regular_file(path: str, root: str) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegularFileError(path)
        # The path may have been swapped between the check and the open: ask the kernel.
        proc = f"/proc/self/fd/{fd}"
        if os.path.exists(proc) and not os.readlink(proc).startswith(root.rstrip("/") + "/"):
            raise _NotRegularFileError(path)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        return _tail(iter(lambda: handle.read(_CHUNK), b""))


def _read_from_zip(archive: str, member: str) -> bytes | None:
    try:
        with zipfile.ZipFile(archive) as zipped, zipped.open(member) as handle:
            return _tail(iter(lambda: handle.read(_CHUNK), b""))
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError, ValueError):
        return None


def _tail(chunks: Iterable[bytes]) -> bytes:
    kept = bytearray()
    dropped = 0
    for chunk in chunks:
        kept += chunk
        if len(kept) > MAX_LOG_BYTES:
            excess = len(kept) - MAX_LOG_BYTES
            dropped += excess
            del kept[:excess]
    if dropped:
        return f"[… the first {dropped} bytes of this log are not shown …]\n".encode() + kept
    return bytes(kept)


# --- GET status/progress/ ------------------------------------------------------------------


async def job_progress(session: AsyncSession, job: Job) -> JobProgress:
    """Every workflow task a job runs, in order, with its run's status and unit counts."""
    runs: Sequence[HistoryRun] = (
        await session.exec(
            select(HistoryRun)
            .where(HistoryRun.job_id == job.id)
            .order_by(col(HistoryRun.timestamp_started), col(HistoryRun.id))
        )
    ).all()
    by_wftask: dict[Any, HistoryRun] = {}
    for run in runs:  # a later run of the same task replaces an earlier one
        key = run.workflowtask_id or run.workflowtask_dump.get("id") or f"run-{run.id}"
        by_wftask[key] = run
    waiting = "pending" if job.status in ACTIVE_JOB_STATUSES else "skipped"
    task_list = (job.workflow_dump or {}).get("task_list") or []
    tasks = []
    for item in task_list[job.first_task_index : job.last_task_index + 1]:
        if not isinstance(item, dict):
            continue
        found: HistoryRun | None = by_wftask.pop(item.get("id"), None)
        name, order = item.get("task_name"), item.get("order")
        tasks.append(_progress(found, item.get("id"), name, order, waiting))
    for run in by_wftask.values():  # runs of tasks the snapshot does not name
        dump = run.workflowtask_dump or {}
        name = dump.get("task_name") or (dump.get("task") or {}).get("name")
        tasks.append(_progress(run, run.workflowtask_id, name, dump.get("order"), waiting))
    assert job.id is not None
    return JobProgress(job_id=job.id, status=job.status, tasks=tasks)


def _progress(
    run: HistoryRun | None, wftask_id: Any, name: Any, order: Any, waiting: str
) -> TaskProgress:
    return TaskProgress(
        workflowtask_id=wftask_id if isinstance(wftask_id, int) else None,
        task_name=name if isinstance(name, str) else None,
        order=order if isinstance(order, int) else None,
        status=run.status if run is not None else waiting,
        num_units_total=run.num_units_total if run is not None else 0,
        num_units_done=run.num_units_done if run is not None else 0,
        num_units_failed=run.num_units_failed if run is not None else 0,
    )
