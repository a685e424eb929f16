"""Benchmark: the runner's overhead per unit, against the same commands through `xargs -P`.

Not a test: it prints figures and the ratios to two targets: DESIGN §8 (runner overhead,
cold: a parallel task over 2,000 images of a no-op program finishes within 1.05x the
time of the same 2,000 commands through `xargs -P <cores>`) and warm start (the same units
run from a warm parent within 0.1x that floor, and likewise for a task that imports a
heavy library: pydantic, and numpy when installed).

    .venv/bin/python bench/runner_overhead.py                     # 2,000 units on SQLite
    .venv/bin/python bench/runner_overhead.py --db postgres       # on a fresh PostgreSQL db
    .venv/bin/python bench/runner_overhead.py --units 200 --rounds 3
    .venv/bin/python bench/runner_overhead.py --no-heavy          # skip the heavy-import task

(a) the runner: a dataset of N images (written straight into the database with
    `apply_image_changes`), a workflow of one parallel task whose command is
    `python noop.py` (a script that does nothing), submitted through the API (the real
    app in a TestClient) and run by `fractal_like.runner.main.Runner` in this process
    (its own thread and event loop, started before the submission, as in a server);
    timed from just before the submit request to the job's `end_timestamp`.
    The workflow task's meta says `warm_start: false`: every unit starts a new
    interpreter, as xargs does.
(b) xargs: the same N command lines `python noop.py --args-json A --out-json B`, their
    args files written beforehand, through `xargs -P <parallelism>`.
(c) warm: the same as (a) with warm start on (the default), each round; then once, a task
    whose script imports pydantic (and numpy) at its top, through the runner warm and
    through xargs (the heavy import's own floor).

See bench/README.md for the last figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine as SyncEngine
from sqlalchemy.engine import make_url
from warm_start import HEAVY  # the heavy-import task of bench/warm_start.py (bench/ is on the path)

from fractal_like.api.app import create_app
from fractal_like.config import Settings
from fractal_like.db import make_async_engine, make_session_factory, sync_url
from fractal_like.migrate import upgrade
from fractal_like.runner.main import Runner
from fractal_like.services.image_updates import apply_image_changes

TARGET_RATIO = 1.05
WARM_TARGET_RATIO = 0.1
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_EMAIL = "bench-admin@example.org"
ADMIN_PASSWORD = "bench-admin-password"
NOOP = '"""A task that does nothing: the floor of a unit is starting Python."""\n'
WARMUP_COMMANDS = 20
JOB_TIMEOUT = 3600.0
# How often the benchmark looks whether the job has ended. The wall time comes from the job's
# end_timestamp, not from this poll: polling rarely only keeps the measurement from taking
# CPU from the units it measures.
JOB_POLL_SECONDS = 1.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- databases


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    name = f"fl_bench_{os.getpid()}"
    admin = create_engine(sync_url(PG_SERVER), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------- setup through the API


def ok(response: Any, status: int) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response.json()


@dataclass
class Setup:
    headers: dict[str, str]
    project_id: int
    dataset_id: int
    workflow_id: int
    zarr_dir: str
    command: str
    task_id: int = 0


def prepare(client: TestClient, noop: Path, python: str = sys.executable) -> Setup:
    """As the admin (who has the embedded local profile): a task, a project, a dataset and
    a one-task workflow."""
    token = ok(
        client.post(
            "/auth/token/login/", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ),
        200,
    )["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    command = f"{shlex.quote(python)} {shlex.quote(str(noop))}"
    task = ok(
        client.post(
            "/api/v2/task/",
            headers=headers,
            json={"name": "noop", "version": "1.0.0", "command_parallel": command},
        ),
        201,
    )
    project = ok(client.post("/api/v2/project/", headers=headers, json={"name": "bench"}), 201)
    pid = project["id"]
    dataset = ok(
        client.post(f"/api/v2/project/{pid}/dataset/", headers=headers, json={"name": "plate"}),
        201,
    )
    workflow = ok(
        client.post(f"/api/v2/project/{pid}/workflow/", headers=headers, json={"name": "noop"}),
        201,
    )
    ok(
        client.post(
            f"/api/v2/project/{pid}/workflow/{workflow['id']}/wftask/",
            headers=headers,
            json=[{"task_id": task["id"]}],
        ),
        201,
    )
    return Setup(
        headers, pid, dataset["id"], workflow["id"], dataset["zarr_dir"], command, task["id"]
    )


def add_workflow(
    client: TestClient, setup: Setup, name: str, script: Path | None, warm_start: bool
) -> Setup:
    """Another one-task workflow in the bench's project: the same no-op task, or a new task
    running `script`, with the workflow task's `warm_start` meta set."""
    headers, pid = setup.headers, setup.project_id
    task_id, command = setup.task_id, setup.command
    if script is not None:
        command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
        task_id = ok(
            client.post(
                "/api/v2/task/",
                headers=headers,
                json={"name": name, "version": "1.0.0", "command_parallel": command},
            ),
            201,
        )["id"]
    workflow = ok(
        client.post(f"/api/v2/project/{pid}/workflow/", headers=headers, json={"name": name}),
        201,
    )
    ok(
        client.post(
            f"/api/v2/project/{pid}/workflow/{workflow['id']}/wftask/",
            headers=headers,
            json=[{"task_id": task_id, "meta_parallel": {"warm_start": warm_start}}],
        ),
        201,
    )
    return dataclasses.replace(setup, workflow_id=workflow["id"], command=command, task_id=task_id)


def image_url(zarr_dir: str, index: int) -> str:
    row, column = divmod(index, 24)
    return f"{zarr_dir}/plate.zarr/{row:03d}/{column + 1:02d}/0"


async def load_images(url: str, dataset_id: int, zarr_dir: str, count: int) -> None:
    engine = make_async_engine(url)
    try:
        async with make_session_factory(engine)() as session:
            updates = [
                {
                    "zarr_url": image_url(zarr_dir, index),
                    "attributes": {"index": index},
                    "types": {"is_3D": False},
                }
                for index in range(count)
            ]
            await apply_image_changes(session, dataset_id, zarr_dir, updates, [])
            await session.commit()
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- (a) the runner


class RunnerThread:
    """A Runner with its own event loop in a thread, as a server would keep one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name="bench-runner", daemon=True)
        self.task: asyncio.Task[None] | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = Runner(self.settings)
        self.task = self.loop.create_task(runner.run_forever())
        self.ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)
        self.loop.close()

    def __enter__(self) -> RunnerThread:
        self.thread.start()
        self.ready.wait()
        return self

    def __exit__(self, *_: object) -> None:
        assert self.task is not None
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(timeout=60)


@dataclass
class Slots:
    """How the runner kept its P unit slots busy, from the files of each unit: the wrapper
    writes the pid file first thing and moves the exit-code file into place last."""

    units: int
    mean_unit: float  # wrapper start -> exit code written
    busy: float  # sum of unit durations / (P x first start .. last end)
    mean_gap: float  # idle slot time per unit: P x span - sum of durations, over units
    span: float

    @classmethod
    def of(cls, folder: Path, parallelism: int) -> Slots | None:
        spans = []
        for args_file in folder.glob("*/par_*-args.json"):
            code_file = args_file.with_name(args_file.name.removesuffix("-args.json") + "-exitcode")
            with contextlib.suppress(OSError):
                spans.append((args_file.stat().st_mtime, code_file.stat().st_mtime))
        if not spans:
            return None
        span = max(end for _, end in spans) - min(start for start, _ in spans)
        total = sum(end - start for start, end in spans)
        return cls(
            len(spans),
            total / len(spans),
            total / (parallelism * span) if span > 0 else 1.0,
            (parallelism * span - total) / len(spans),
            span,
        )


@dataclass
class RunnerRun:
    seconds: float
    phases: dict[str, float]
    cpu: Cpu
    slots: Slots | None
    file_create: float = 0.0  # seconds to create one empty file where the job folders are


@dataclass
class Cpu:
    """CPU seconds over a run: this process (all its threads), its waited-for children, and
    the local PostgreSQL server's processes (they share the cores with the units)."""

    own: float
    children: float
    database: float = 0.0

    @classmethod
    def since(cls, before: os.times_result, database_before: float = 0.0) -> Cpu:
        now = os.times()
        return cls(
            now.user + now.system - before.user - before.system,
            now.children_user + now.children_system - before.children_user - before.children_system,
            postgres_cpu() - database_before,
        )


def postgres_cpu() -> float:
    """CPU seconds used so far by this machine's live `postgres` processes (0 without any)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, _, rest = (entry / "stat").read_text().rpartition(")")
        except OSError:
            continue
        if head.endswith("(postgres"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_with_runner(
    client: TestClient, setup: Setup, sync: SyncEngine, parallelism: int
) -> RunnerRun:
    database_before = postgres_cpu()
    cpu_before = os.times()
    started = datetime.now(UTC)
    job = ok(
        client.post(
            f"/api/v2/project/{setup.project_id}/job/submit/"
            f"?workflow_id={setup.workflow_id}&dataset_id={setup.dataset_id}",
            headers=setup.headers,
            json={},
        ),
        202,
    )
    submitted = datetime.now(UTC)
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        with sync.connect() as connection:
            status, end = connection.execute(
                text("SELECT status, end_timestamp FROM jobv2 WHERE id = :j"), {"j": job["id"]}
            ).one()
        if status in ("done", "failed"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job['id']} did not end within {JOB_TIMEOUT} s")
        time.sleep(JOB_POLL_SECONDS)
    if status != "done":
        shown = ok(
            client.get(
                f"/api/v2/project/{setup.project_id}/job/{job['id']}/", headers=setup.headers
            ),
            200,
        )
        raise RuntimeError(f"job {job['id']} failed:\n{shown['executor_error_log']}")
    end = _utc(end)
    cpu = Cpu.since(cpu_before, database_before)
    with sync.connect() as connection:
        run_started, run_ended, first_unit, last_unit = connection.execute(
            text(
                "SELECT r.timestamp_started, r.timestamp_ended, "
                "MIN(u.timestamp_started), MAX(u.timestamp_ended) "
                "FROM historyrun r JOIN historyunit u ON u.history_run_id = r.id "
                "WHERE r.job_id = :j GROUP BY r.id"
            ),
            {"j": job["id"]},
        ).one()
    phases: dict[str, float] = {"submit request": (submitted - started).total_seconds()}
    if run_started is not None:
        phases["claim + start of the task"] = (_utc(run_started) - submitted).total_seconds()
        if last_unit is not None:
            phases["units (run created -> last unit ended)"] = (
                _utc(last_unit) - _utc(run_started)
            ).total_seconds()
            phases["after the units (merge, history, job end)"] = (
                end - _utc(last_unit)
            ).total_seconds()
    if first_unit is not None:
        phases["(first unit started after run created)"] = (
            _utc(first_unit) - _utc(run_started)
        ).total_seconds()
    del run_ended
    slots = Slots.of(Path(job["working_dir"]), parallelism)
    return RunnerRun((end - started).total_seconds(), phases, cpu, slots)


# ---------------------------------------------------------------- (b) xargs


def prepare_xargs(workdir: Path, zarr_dir: str, units: int, noop: Path) -> Path:
    """The args files of every unit and xargs' input: NUL-separated argv tokens."""
    folder = workdir / f"xargs-{noop.stem}"
    folder.mkdir()
    tokens: list[str] = []
    for index in range(units):
        args = folder / f"par_{index:06d}-args.json"
        args.write_text(json.dumps({"zarr_url": image_url(zarr_dir, index)}))
        out = folder / f"par_{index:06d}-metadiff.json"
        tokens += [str(noop), "--args-json", str(args), "--out-json", str(out)]
    stdin = workdir / f"xargs-input-{noop.stem}"
    stdin.write_text("\0".join(tokens) + "\0")
    return stdin


@dataclass
class XargsRun:
    seconds: float
    cpu: Cpu


def run_with_xargs(stdin: Path, parallelism: int) -> XargsRun:
    command = ["xargs", "-0", "-n", "5", "-P", str(parallelism), sys.executable]
    with stdin.open("rb") as handle:
        database_before = postgres_cpu()
        cpu_before = os.times()
        started = time.perf_counter()
        subprocess.run(
            command,
            stdin=handle,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            # A session of its own, like the runner's launcher: with Linux's autogroup
            # scheduling each session is weighed as one group, so under load from other
            # sessions both sides' units get the same share of the CPU.
            start_new_session=True,
        )
        return XargsRun(time.perf_counter() - started, Cpu.since(cpu_before, database_before))


def warm_up(noop: Path) -> None:
    """Put the interpreter and its modules in the page cache before anything is timed."""
    for _ in range(WARMUP_COMMANDS):
        # --help: the heavy task's argparse exits at once, after its imports.
        subprocess.run([sys.executable, str(noop), "--help"], check=True, stdout=subprocess.DEVNULL)


def file_create_seconds(parent: Path, files: int = 200) -> float:
    """What creating one new empty file costs right now beside the job folders. The runner
    creates three per unit (args, log, exit code) inside its timed window, xargs none (its
    args files are written beforehand). On some filesystems this is far from free: ext4
    without a journal skips inodes freed in the last minutes, one by one, so after many
    deletions (a test suite, the cleanup of an earlier benchmark) a creation can take
    0.1 to 1 ms instead of 0.01 ms."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="create-probe-", dir=parent))
    started = time.perf_counter()
    for index in range(files):
        os.close(os.open(folder / f"f{index}", os.O_WRONLY | os.O_CREAT, 0o644))
    return (time.perf_counter() - started) / files  # kept until the end: no deletions here


def python_start_seconds(noop: Path, runs: int = 20) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, str(noop)], check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=2000, help="units (images), default 2000")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--parallelism",
        type=int,
        default=os.cpu_count() or 1,
        help="units at once, for the runner and for xargs -P (default: the number of cores)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="timed runs of each side, alternating (default 1)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the temporary folder (database, job folders, xargs files) is made "
        "(default: the system's temporary directory)",
    )
    parser.add_argument(
        "--no-heavy",
        action="store_true",
        help="skip the heavy-import task (its xargs floor alone takes minutes)",
    )
    options = parser.parse_args()
    units, parallelism = options.units, options.parallelism
    load_before = _load()

    with tempfile.TemporaryDirectory(prefix="fl-bench-runner-", dir=options.workdir) as tmp:
        workdir = Path(tmp)
        noop = workdir / "noop.py"
        noop.write_text(NOOP)
        heavy = None
        if not options.no_heavy:
            heavy = workdir / "heavy.py"
            numpy = "import numpy" if importlib.util.find_spec("numpy") else ""
            heavy.write_text(HEAVY.format(numpy=numpy))
        with database(options.db, workdir) as url:
            measured = measure(url, workdir, noop, heavy, units, parallelism, options.rounds)
    report(load_before, options.db, units, parallelism, measured)
    return 0


@dataclass
class Measured:
    start_cost: float
    runner: list[RunnerRun]  # cold
    xargs: list[XargsRun]
    warm: list[RunnerRun]
    heavy_runner: list[RunnerRun]  # warm
    heavy_xargs: list[XargsRun]


def measure(
    url: str,
    workdir: Path,
    noop: Path,
    heavy: Path | None,
    units: int,
    parallelism: int,
    rounds: int,
) -> Measured:
    log(f"migrating {make_url(url).render_as_string(hide_password=True)}")
    upgrade(url)
    settings = Settings(
        DB_URL=url,
        DATA_DIR=workdir / "data",
        JWT_SECRET="bench-secret-" + secrets.token_hex(20),
        ADMIN_EMAIL=ADMIN_EMAIL,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        BOOTSTRAP_LOCAL_RESOURCE=True,
        EMBEDDED_RUNNER=False,
        RUNNER_PARALLELISM=parallelism,
    )
    runner_runs: list[RunnerRun] = []
    xargs_runs: list[XargsRun] = []
    warm_runs: list[RunnerRun] = []
    heavy_runner: list[RunnerRun] = []
    heavy_xargs: list[XargsRun] = []
    sync = create_engine(sync_url(url))
    try:
        with TestClient(create_app(settings)) as client:
            base = prepare(client, noop)
            setup = add_workflow(client, base, "noop-cold", None, warm_start=False)
            warm_setup = add_workflow(client, base, "noop-warm", None, warm_start=True)
            log(f"loading {units} images")
            asyncio.run(load_images(url, setup.dataset_id, setup.zarr_dir, units))
            stdin = prepare_xargs(workdir, setup.zarr_dir, units, noop)
            warm_up(noop)
            start_cost = python_start_seconds(noop)
            with RunnerThread(settings):
                time.sleep(1.0)  # the runner's first poll and stale check are behind it
                for index in range(rounds):
                    sides = ("runner", "xargs") if index % 2 == 0 else ("xargs", "runner")
                    for side in sides:
                        log(f"round {index + 1}: {side}, {units} units ...")
                        if side == "runner":
                            create = file_create_seconds(settings.DATA_DIR / "probe")
                            runner_runs.append(run_with_runner(client, setup, sync, parallelism))
                            runner_runs[-1].file_create = create
                            log(
                                f"  runner {runner_runs[-1].seconds:.2f} s "
                                f"(file creation {create * 1000:.3f} ms)"
                            )
                        else:
                            xargs_runs.append(run_with_xargs(stdin, parallelism))
                            log(f"  xargs {xargs_runs[-1].seconds:.2f} s")
                    log(f"round {index + 1}: runner warm, {units} units ...")
                    warm_runs.append(run_with_runner(client, warm_setup, sync, parallelism))
                    log(f"  runner warm {warm_runs[-1].seconds:.2f} s")
                if heavy is not None:
                    heavy_setup = add_workflow(client, base, "heavy-warm", heavy, warm_start=True)
                    heavy_stdin = prepare_xargs(workdir, setup.zarr_dir, units, heavy)
                    warm_up(heavy)
                    log(f"heavy import: runner warm, {units} units ...")
                    heavy_runner.append(run_with_runner(client, heavy_setup, sync, parallelism))
                    log(f"  runner warm {heavy_runner[-1].seconds:.2f} s")
                    log(f"heavy import: xargs, {units} units (minutes) ...")
                    heavy_xargs.append(run_with_xargs(heavy_stdin, parallelism))
                    log(f"  xargs {heavy_xargs[-1].seconds:.2f} s")
    finally:
        sync.dispose()
    return Measured(start_cost, runner_runs, xargs_runs, warm_runs, heavy_runner, heavy_xargs)


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def report(load_before: str, db: str, units: int, parallelism: int, measured: Measured) -> None:
    start_cost, runner_runs, xargs_runs = measured.start_cost, measured.runner, measured.xargs
    runner = statistics.median(run.seconds for run in runner_runs)
    xargs = statistics.median(run.seconds for run in xargs_runs)
    ratio = runner / xargs
    floor = start_cost * units / parallelism
    date = datetime.now().strftime("%Y-%m-%d")
    print(
        f"Runner overhead, cold: {units} no-op Python units, parallelism {parallelism}, "
        f"database {db} ({date}, {os.cpu_count()} cores)"
    )
    print(f"python start (median of 20, one at a time): {start_cost * 1000:.1f} ms")
    print("| side   | runs | wall time (median) |   units/s | per unit x P | vs xargs |")
    print("|--------|------|--------------------|-----------|--------------|----------|")
    for name, seconds, runs in (
        ("xargs", xargs, len(xargs_runs)),
        ("runner", runner, len(runner_runs)),
    ):
        print(
            f"| {name:<6} | {runs:>4} | {seconds:>16.2f} s | {units / seconds:>9.1f} | "
            f"{seconds * parallelism / units * 1000:>9.1f} ms | {seconds / xargs:>7.3f}x |"
        )
    print(f"floor (python start x units / P): {floor:.2f} s")
    print(
        f"ratio runner/xargs: {ratio:.3f} (target <= {TARGET_RATIO}: "
        f"{'met' if ratio <= TARGET_RATIO else 'MISSED'}); "
        f"overhead {(runner - xargs) * 1000 / units:+.2f} ms per unit, {runner - xargs:+.2f} s"
    )
    if len(runner_runs) > 1 or len(xargs_runs) > 1:
        best_runner = min(run.seconds for run in runner_runs)
        best_xargs = min(run.seconds for run in xargs_runs)
        print(
            f"best of each side (least disturbed by other load): runner {best_runner:.2f} s, "
            f"xargs {best_xargs:.2f} s, ratio {best_runner / best_xargs:.3f}"
        )
        print(
            "all runs: runner "
            + ", ".join(f"{run.seconds:.2f}" for run in runner_runs)
            + " s; xargs "
            + ", ".join(f"{run.seconds:.2f}" for run in xargs_runs)
            + " s"
        )
    if len(runner_runs) > 1:
        # Load from other work drifts over minutes; a round's two sides run back to back.
        walls = [r.seconds / x.seconds for r, x in zip(runner_runs, xargs_runs, strict=True)]
        cpus = [
            (r.cpu.own + r.cpu.children) / (x.cpu.own + x.cpu.children)
            for r, x in zip(runner_runs, xargs_runs, strict=True)
        ]
        print(
            "paired ratios (each round's runner / its back-to-back xargs): wall "
            + ", ".join(f"{value:.3f}" for value in walls)
            + f" (median {statistics.median(walls):.3f}); CPU "
            + ", ".join(f"{value:.3f}" for value in cpus)
            + f" (median {statistics.median(cpus):.3f})"
        )
        for index, (r, x) in enumerate(zip(runner_runs, xargs_runs, strict=True), start=1):
            print(
                f"  round {index}: CPU ms per unit, this process / units (and launcher or xargs):"
                f" runner {r.cpu.own * 1000 / units:.2f} / {r.cpu.children * 1000 / units:.2f},"
                f" xargs {x.cpu.own * 1000 / units:.2f} / {x.cpu.children * 1000 / units:.2f}"
            )
    for name, runs_of in (("xargs", xargs_runs), ("runner", runner_runs)):
        own = statistics.median(run.cpu.own for run in runs_of)
        children = statistics.median(run.cpu.children for run in runs_of)
        print(
            f"CPU during {name} (median): this process {own:.2f} s "
            f"({own * 1000 / units:.2f} ms per unit), units and their wrappers {children:.2f} s "
            f"({children * 1000 / units:.2f} ms per unit)"
        )
    if db == "postgres":
        print(
            "CPU of the PostgreSQL server's processes (median): during xargs "
            f"{statistics.median(run.cpu.database for run in xargs_runs):.2f} s, during the "
            f"runner {statistics.median(run.cpu.database for run in runner_runs):.2f} s"
        )
    runner_cpu = statistics.median(run.cpu.own + run.cpu.children for run in runner_runs)
    xargs_cpu = statistics.median(run.cpu.own + run.cpu.children for run in xargs_runs)
    print(
        f"CPU ratio runner/xargs (all CPU seconds spent, less sensitive to other load on the "
        f"machine than wall time): {runner_cpu / xargs_cpu:.3f}"
    )
    slots = [run.slots for run in runner_runs if run.slots is not None]
    if slots:
        unit = statistics.median(x.mean_unit for x in slots) * 1000
        busy = statistics.median(x.busy for x in slots) * 100
        gap = statistics.median(x.mean_gap for x in slots) * 1000
        print(
            f"runner's unit slots (median): a unit (args written -> exit code) {unit:.1f} ms, "
            f"slots busy {busy:.1f}%, idle slot time {gap:.1f} ms per unit "
            f"(xargs: {xargs * parallelism * 1000 / units:.1f} ms per unit x P in all)"
        )
    creates = [run.file_create * 1000 for run in runner_runs]
    print(
        "creating a file beside the job folders, before each runner run: "
        + ", ".join(f"{value:.3f}" for value in creates)
        + " ms (the runner creates 3 per unit: args, log, exit code; xargs none while timed)"
    )
    print(f"load average before / after: {load_before} / {_load()}")
    print_phases("runner phases (median over runs):", runner_runs)
    report_warm(units, xargs, measured)


def print_phases(title: str, runs: list[RunnerRun]) -> None:
    print(title)
    for name in runs[0].phases:
        values = [run.phases[name] for run in runs if name in run.phases]
        print(f"  {name:<45} {statistics.median(values):>8.3f} s")


def report_warm(units: int, xargs: float, measured: Measured) -> None:
    """The warm column: the runner with warm start against the xargs floor of each task."""
    print()
    print(f"Warm start through the runner ({units} units; target <= {WARM_TARGET_RATIO}x xargs):")
    print("| task         | runner warm (median) | xargs (median) | warm/xargs | runs |")
    print("|--------------|----------------------|----------------|------------|------|")
    rows = [("no-op", measured.warm, xargs)]
    if measured.heavy_runner and measured.heavy_xargs:
        rows.append(("heavy import", measured.heavy_runner, measured.heavy_xargs[0].seconds))
    for name, runs, floor in rows:
        warm = statistics.median(run.seconds for run in runs)
        ratio = warm / floor
        verdict = "met" if ratio <= WARM_TARGET_RATIO else "MISSED"
        print(
            f"| {name:<12} | {warm:>18.2f} s | {floor:>12.2f} s | {ratio:>9.3f}x | {len(runs):>4} |"
            f" {verdict}"
        )
        cpu = statistics.median(run.cpu.own + run.cpu.children for run in runs)
        print(
            f"    all runs {', '.join(f'{run.seconds:.2f}' for run in runs)} s; "
            f"CPU {cpu * 1000 / units:.2f} ms per unit"
        )
    print_phases("warm no-op runner phases (median over runs):", measured.warm)


if __name__ == "__main__":
    sys.exit(main())
