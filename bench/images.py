"""Benchmark: a dataset of 1,000,000 images, queried through the API and updated by a task.

Not a test: it prints figures and their ratio to the targets of DESIGN §8
(a filtered, paginated images query under 100 ms; 10,000 image updates under 1 s).

    .venv/bin/python bench/images.py                      # both backends, 1,000,000 images
    .venv/bin/python bench/images.py --images 100000 --backends sqlite
    .venv/bin/python bench/images.py --pg-url postgresql://postgres@127.0.0.1:5432/mydb

See bench/README.md for what each figure measures and the last results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fractal_like.api.app import create_app
from fractal_like.config import Settings
from fractal_like.db import make_async_engine, make_session_factory, sync_url
from fractal_like.migrate import upgrade
from fractal_like.services import images as image_service
from fractal_like.services.image_updates import apply_image_changes

DEFAULT_PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_EMAIL = "bench-admin@example.org"
ADMIN_PASSWORD = "bench-admin-password"
USER_PASSWORD = "bench-user-password"

QUERY_TARGET_S = 0.100
UPDATE_TARGET_S = 1.0

# A plate: 16 x 24 wells, 4 fields of view, 2 channels -> 3,072 images.
ROWS = "ABCDEFGHIJKLMNOP"
COLUMNS = 24
FOVS = 4
CHANNELS = ("DAPI", "GFP")
PER_WELL = FOVS * len(CHANNELS)
PER_PLATE = len(ROWS) * COLUMNS * PER_WELL

# The query of the benchmark: one well of every 3D plate, 100 images a page.
QUERY_BODY = {"attribute_filters": {"well": ["B03"]}, "type_filters": {"is_3D": True}}
PAGE_SIZE = 100


@dataclass
class Figure:
    backend: str
    name: str
    samples: list[float]
    target: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the data


def image_row(index: int, zarr_dir: str) -> tuple[str, str, str]:
    """zarr_url and the JSON text of attributes and types of the image number `index`."""
    plate, rest = divmod(index, PER_PLATE)
    well, rest = divmod(rest, PER_WELL)
    fov, channel = divmod(rest, len(CHANNELS))
    row, column = divmod(well, COLUMNS)
    plate_name = f"plate_{plate:04d}.zarr"
    channel_name = CHANNELS[channel]
    zarr_url = f"{zarr_dir}/{plate_name}/{ROWS[row]}/{column + 1:02d}/{fov}_{channel_name}"
    attributes = (
        f'{{"plate": "{plate_name}", "well": "{ROWS[row]}{column + 1:02d}", '
        f'"fov": {fov}, "channel": "{channel_name}"}}'
    )
    is_3d = "true" if plate % 2 == 0 else "false"
    if fov % 2 == 0:
        types = f'{{"is_3D": {is_3d}, "illumination_corrected": true}}'
    else:
        types = f'{{"is_3D": {is_3d}}}'
    return zarr_url, attributes, types


def load_postgres(url: str, dataset_id: int, zarr_dir: str, count: int) -> None:
    engine = create_engine(sync_url(url))
    try:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            statement = "COPY imagev2 (dataset_id, zarr_url, origin, attributes, types) FROM STDIN"
            with cursor.copy(statement) as copy:  # type: ignore[attr-defined]
                block: list[str] = []
                for index in range(count):
                    zarr_url, attributes, types = image_row(index, zarr_dir)
                    block.append(f"{dataset_id}\t{zarr_url}\t\\N\t{attributes}\t{types}\n")
                    if len(block) == 50_000:
                        copy.write("".join(block))
                        block.clear()
                copy.write("".join(block))
            raw.commit()
        finally:
            raw.close()
        # What autovacuum does soon after a bulk load: statistics and the visibility map.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE imagev2"))
    finally:
        engine.dispose()


def load_sqlite(path: Path, dataset_id: int, zarr_dir: str, count: int) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        rows = (
            (dataset_id, *image_row(index, zarr_dir)) for index in range(count)
        )  # a generator: the million rows never sit in memory at once
        with connection:
            connection.executemany(
                "INSERT INTO imagev2 (dataset_id, zarr_url, origin, attributes, types) "
                "VALUES (?, ?, NULL, ?, ?)",
                rows,
            )
    finally:
        connection.close()


async def rebuild_index(url: str, dataset_id: int) -> None:
    """The summary (and SQLite's attribute lookup) of images loaded straight into imagev2."""
    engine = make_async_engine(url)
    try:
        async with make_session_factory(engine)() as session:
            await image_service.rebuild_image_index(session, dataset_id)
            await session.commit()
    finally:
        await engine.dispose()
    if make_url(url).get_backend_name() == "postgresql":
        sync = create_engine(sync_url(url))
        try:
            with sync.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE imagev2_summary"))
        finally:
            sync.dispose()


# ---------------------------------------------------------------- databases


@contextlib.contextmanager
def postgres_database(pg_url: str | None) -> Iterator[str]:
    if pg_url is not None:
        yield pg_url
        return
    name = f"fl_bench_{os.getpid()}"
    admin = create_engine(sync_url(DEFAULT_PG_SERVER), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(DEFAULT_PG_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------- the API


def expect(response: Any, status: int) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response.json()


def bearer(client: TestClient, email: str, password: str) -> dict[str, str]:
    body = expect(
        client.post("/auth/token/login/", data={"username": email, "password": password}), 200
    )
    return {"Authorization": f"Bearer {body['access_token']}"}


def make_user_dataset(client: TestClient, workdir: Path) -> tuple[dict[str, str], int, int, str]:
    """A user with a profile, a project and a dataset: (headers, project id, dataset id, dir)."""
    admin = bearer(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    resource = expect(
        client.post(
            "/admin/v2/resource/",
            headers=admin,
            json={
                "name": f"bench-{os.getpid()}",
                "type": "local",
                "jobs_local_dir": str(workdir / "jobs"),
                "tasks_local_dir": str(workdir / "tasks"),
                "jobs_runner_config": {},
            },
        ),
        201,
    )
    profile = expect(
        client.post(
            f"/admin/v2/resource/{resource['id']}/profile/",
            headers=admin,
            json={"name": f"bench-profile-{os.getpid()}", "resource_type": "local"},
        ),
        201,
    )
    project_dir = workdir / "user-data"
    project_dir.mkdir(parents=True, exist_ok=True)
    email = f"bench-{os.getpid()}-{time.time_ns()}@example.org"
    expect(
        client.post(
            "/auth/register/",
            headers=admin,
            json={
                "email": email,
                "password": USER_PASSWORD,
                "project_dirs": [str(project_dir)],
                "profile_id": profile["id"],
            },
        ),
        201,
    )
    user = bearer(client, email, USER_PASSWORD)
    project = expect(client.post("/api/v2/project/", headers=user, json={"name": "bench"}), 201)
    dataset = expect(
        client.post(
            f"/api/v2/project/{project['id']}/dataset/",
            headers=user,
            json={"name": "million", "zarr_dir": str(project_dir / "zarr")},
        ),
        201,
    )
    return user, project["id"], dataset["id"], dataset["zarr_dir"]


# ---------------------------------------------------------------- measures


def timed(function: Callable[[], Any], runs: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


async def timed_async(function: Callable[[], Any], runs: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        await function()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await function()
        samples.append(time.perf_counter() - start)
    return samples


async def measure_parts(url: str, dataset_id: int, runs: int, backend: str) -> list[Figure]:
    """The three parts of an images query, each on its own, outside HTTP."""
    engine = make_async_engine(url)
    factory = make_session_factory(engine)
    filters: dict[str, Any] = {
        "type_filters": QUERY_BODY["type_filters"],
        "attribute_filters": QUERY_BODY["attribute_filters"],
    }
    figures = []
    try:
        async with factory() as session:
            total = await image_service.count_images(session, dataset_id, **filters)
            last_offset = max(0, (total - 1) // PAGE_SIZE * PAGE_SIZE)

            async def count() -> None:
                await image_service.count_images(session, dataset_id, **filters)

            async def first_page() -> None:
                await image_service.query_images(session, dataset_id, **filters, limit=PAGE_SIZE)

            async def last_page() -> None:
                await image_service.query_images(
                    session, dataset_id, **filters, offset=last_offset, limit=PAGE_SIZE
                )

            async def summary() -> None:
                await image_service.summary(session, dataset_id)

            parts = [
                ("  part: count (filtered)", count),
                ("  part: page fetch, first page", first_page),
                ("  part: page fetch, last page", last_page),
                ("  part: summary (whole dataset)", summary),
            ]
            for name, function in parts:
                log(f"[{backend}] timing {name.strip()}")
                samples = await timed_async(function, runs)
                figures.append(Figure(backend, name, samples))
    finally:
        await engine.dispose()
    return figures


def update_indexes(images: int, updates: int, run: int, scattered: bool) -> list[int]:
    """Which images a run updates: a block in creation order, or one image every `step`."""
    count = min(updates, images)
    if scattered:
        step = max(1, images // count)
        return [(n * step + run) % images for n in range(count)]
    # The images of a few whole plates, as a task filtered on plates touches them;
    # each run takes the next block, so a run never finds its changes already made.
    first = (run * count) % max(1, images - count + 1)
    return list(range(first, first + count))


async def measure_updates(
    url: str,
    dataset_id: int,
    zarr_dir: str,
    images: int,
    updates: int,
    runs: int,
    scattered: bool,
) -> list[float]:
    """apply_image_changes of `updates` existing images, with the commit, `runs` times."""
    engine = make_async_engine(url)
    factory = make_session_factory(engine)
    samples = []
    try:
        for run in range(runs):
            batch = [
                {
                    "zarr_url": image_row(index, zarr_dir)[0],
                    # A new attribute, one dropped (None) and a new type: every row changes.
                    "attributes": {"registration_run": run, "fov": None},
                    "types": {"registered": True},
                }
                for index in update_indexes(images, updates, run, scattered)
            ]
            async with factory() as session:
                start = time.perf_counter()
                result = await apply_image_changes(
                    session,
                    dataset_id,
                    zarr_dir,
                    batch,
                    [],
                    output_types={"illumination_corrected": True},
                )
                await session.commit()
                samples.append(time.perf_counter() - start)
            assert result.updated == len(batch) and result.created == 0, result
    finally:
        await engine.dispose()
    return samples


def bench_backend(backend: str, url: str, workdir: Path, args: argparse.Namespace) -> list[Figure]:
    upgrade(url)
    settings = Settings(
        DB_URL=url,
        DATA_DIR=workdir / "data",
        JWT_SECRET="bench-secret-" + secrets.token_hex(20),
        ADMIN_EMAIL=ADMIN_EMAIL,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        # No jobs here; a runner polling the queue would only wait on the bulk writes.
        EMBEDDED_RUNNER=False,
    )
    figures: list[Figure] = []
    with TestClient(create_app(settings)) as client:
        headers, project_id, dataset_id, zarr_dir = make_user_dataset(client, workdir)

        log(f"[{backend}] loading {args.images:,} images")
        start = time.perf_counter()
        if backend == "postgres":
            load_postgres(url, dataset_id, zarr_dir, args.images)
        else:
            load_sqlite(Path(make_url(url).database or ""), dataset_id, zarr_dir, args.images)
        figures.append(
            Figure(backend, f"load {args.images:,} images (setup)", [time.perf_counter() - start])
        )
        log(f"[{backend}] computing the summary (and attribute lookup) of the loaded images")
        start = time.perf_counter()
        asyncio.run(rebuild_index(url, dataset_id))
        figures.append(
            Figure(
                backend,
                "  rebuild_image_index of the loaded images (setup)",
                [time.perf_counter() - start],
            )
        )

        route = f"/api/v2/project/{project_id}/dataset/{dataset_id}/images/query/"
        first = expect(
            client.post(route, headers=headers, params={"page_size": PAGE_SIZE}, json=QUERY_BODY),
            200,
        )
        pages = max(1, -(-first["total_count"] // PAGE_SIZE))
        log(
            f"[{backend}] query matches {first['total_count']:,} images ({pages} pages); "
            f"summary has {sum(len(v) for v in first['attributes'].values())} attribute values"
        )
        assert len(first["items"]) == min(PAGE_SIZE, first["total_count"])
        page_numbers = iter(range(10**9))

        def query() -> None:
            page = next(page_numbers) % pages + 1
            response = client.post(
                route,
                headers=headers,
                params={"page": page, "page_size": PAGE_SIZE},
                json=QUERY_BODY,
            )
            assert response.status_code == 200, response.text

        log(f"[{backend}] timing the images query through HTTP")
        figures.append(
            Figure(
                backend,
                "images/query/ (HTTP, filtered, page_size 100)",
                timed(query, args.runs),
                QUERY_TARGET_S,
            )
        )

        # The same route on an empty dataset of the same user: the fixed cost of a request
        # (authentication, ownership checks, HTTP), whatever the number of images.
        empty = expect(
            client.post(
                f"/api/v2/project/{project_id}/dataset/",
                headers=headers,
                json={"name": "empty", "zarr_dir": zarr_dir + "-empty"},
            ),
            201,
        )
        empty_route = f"/api/v2/project/{project_id}/dataset/{empty['id']}/images/query/"

        def query_empty() -> None:
            response = client.post(
                empty_route, headers=headers, params={"page_size": PAGE_SIZE}, json=QUERY_BODY
            )
            assert response.status_code == 200, response.text

        figures.append(
            Figure(backend, "  same route, empty dataset (fixed cost)", timed(query_empty, 20))
        )

        figures += asyncio.run(measure_parts(url, dataset_id, args.runs, backend))

        step = max(1, args.images // max(1, args.updates))
        spread = f"1 image in {step}, worst case"
        for scattered, label in ((False, "block of plates"), (True, spread)):
            log(f"[{backend}] timing {args.updates:,} image updates ({label})")
            samples = asyncio.run(
                measure_updates(
                    url,
                    dataset_id,
                    zarr_dir,
                    args.images,
                    args.updates,
                    args.update_runs,
                    scattered,
                )
            )
            name = f"apply_image_changes, {args.updates:,} updates, {label}"
            figures.append(Figure(backend, name, samples, UPDATE_TARGET_S))
    return figures


# ---------------------------------------------------------------- report


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def print_table(figures: list[Figure], images: int) -> None:
    header = ("backend", "measure", "runs", "median", "p95", "target", "median/target")
    rows = [header]
    for figure in figures:
        rows.append(
            (
                figure.backend,
                figure.name,
                str(len(figure.samples)),
                milliseconds(figure.median),
                milliseconds(figure.p95),
                milliseconds(figure.target) if figure.target else "-",
                f"{figure.median / figure.target:.2f}x" if figure.target else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print(f"\nImages benchmark: {images:,} images in one dataset ({time.strftime('%Y-%m-%d')})")
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("| " + " | ".join(cells) + " |")
        if number == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1_000_000, help="images in the dataset")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument(
        "--pg-url",
        default=None,
        help="an existing, empty PostgreSQL database to use and keep (default: a fresh "
        f"fl_bench_<pid> database on {make_url(DEFAULT_PG_SERVER).host}, dropped after)",
    )
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each query")
    parser.add_argument("--updates", type=int, default=10_000, help="images updated per call")
    parser.add_argument(
        "--update-runs", type=int, default=3, help="timed update calls of each kind"
    )
    args = parser.parse_args()
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")

    figures: list[Figure] = []
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix=f"fl-bench-{backend}-") as tmp:
            workdir = Path(tmp)
            if backend == "sqlite":
                figures += bench_backend(
                    backend, f"sqlite:///{workdir / 'bench.db'}", workdir, args
                )
            else:
                with postgres_database(args.pg_url) as url:
                    figures += bench_backend(backend, url, workdir, args)
    print_table(figures, args.images)


if __name__ == "__main__":
    main()
