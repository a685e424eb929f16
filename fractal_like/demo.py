"""`fractal-like demo`: a whole round trip on a fresh embedded server, in a few seconds.

It makes a folder for the demo (kept in the current folder, or a temporary one), migrates
a SQLite database there, starts the real app with its embedded runner on a free local
port, and then acts as a user would, through HTTP only: it logs in as the admin,
registers the example task package (`fractal_like/examples/demo_tasks`), creates a
project, a dataset and a workflow (converter -> measure -> summarise), submits a job,
follows it with a progress bar, and prints the resulting images and where the logs are.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from . import __version__
from .config import RunnerBackend, Settings
from .examples import DEMO_TASKS_ROOT

ADMIN_EMAIL = "admin@example.org"
HOST = "127.0.0.1"
PROGRESS_ROUTE = "/api/v2/project/{project_id}/status/progress/"
POLL_SECONDS = 0.1
START_TIMEOUT = 30.0
JOB_TIMEOUT = 300.0
STEPS = (
    ("create_demo_images", "converter"),
    ("measure_demo_image", "measure"),
    ("summarise_demo", "summarise"),
)
MAX_IMAGES = 96  # the wells of one plate
# Arguments of the measure step; a test may set a failing value here.
MEASURE_ARGS: dict[str, Any] = {"threshold": 128}


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why."""


@dataclass
class DemoServer:
    url: str
    settings: Settings
    has_progress_route: bool = False


def run_demo(images: int = 8, keep: bool = True) -> int:
    """Run the demo; returns the exit code (0 done, 1 the job or the demo failed, 2 bad input)."""
    console = Console(soft_wrap=False)
    if not 1 <= images <= MAX_IMAGES:
        console.print(f"[red]error:[/red] --images must be between 1 and {MAX_IMAGES}")
        return 2
    folder = _demo_folder(keep)
    try:
        return _run(console, folder, images, keep)
    except DemoError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        return 1
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _demo_folder(keep: bool) -> Path:
    if not keep:
        return Path(tempfile.mkdtemp(prefix="fractal-like-demo-")).resolve()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        folder = Path.cwd() / f"fractal-like-demo-{stamp}{f'-{attempt}' if attempt else ''}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder.resolve()
    raise DemoError(f"cannot make a fresh demo folder in {Path.cwd()}")


def _run(console: Console, folder: Path, images: int, keep: bool) -> int:
    try:
        import httpx
    except ImportError:
        raise DemoError("the demo talks to its server with httpx: `pip install httpx`") from None

    password = secrets.token_urlsafe(12)
    settings = Settings(
        DATA_DIR=folder,
        # Every setting that matters is given, so FRACTAL_LIKE_* variables of a real
        # deployment in the environment never point the demo at a real database.
        DB_URL=f"sqlite:///{folder / 'fractal-like.db'}",
        JWT_SECRET=None,  # generated and kept in the demo folder
        ADMIN_EMAIL=ADMIN_EMAIL,
        ADMIN_PASSWORD=password,
        BOOTSTRAP_LOCAL_RESOURCE=True,
        EMBEDDED_RUNNER=True,
        RUNNER_BACKEND=RunnerBackend.LOCAL,
        RUNNER_POLL_SECONDS=POLL_SECONDS,
        RUNNER_PARALLELISM=None,
        HOST=HOST,
    )
    console.print(f"demo folder: {escape(str(folder))}", soft_wrap=True)
    with _serve(settings) as server:
        console.print(f"fractal-like {__version__} is serving at [bold]{server.url}[/bold]")
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            try:
                return _drive(console, client, server, folder, images, keep, password)
            except httpx.HTTPError as error:
                raise DemoError(f"talking to the demo server failed: {error!r}") from None


@contextlib.contextmanager
def _serve(settings: Settings) -> Iterator[DemoServer]:
    """The real app under uvicorn in a background thread, on a free port of 127.0.0.1."""
    import uvicorn

    from .api.app import create_app
    from .migrate import upgrade

    upgrade(settings.database_url)
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))  # the port is ours from here on: no race with another process
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="demo-server", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise DemoError("the server stopped while starting (see the messages above)")
            if time.monotonic() > deadline:
                raise DemoError(f"the server did not start within {START_TIMEOUT:.0f} s")
            time.sleep(0.02)
        yield DemoServer(f"http://{HOST}:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def _expect(response: Any, status: int, what: str) -> Any:
    if response.status_code != status:
        raise DemoError(f"could not {what}: HTTP {response.status_code} {response.text}")
    return response.json() if response.content else None


def _drive(
    console: Console,
    client: Any,
    server: DemoServer,
    folder: Path,
    images: int,
    keep: bool,
    password: str,
) -> int:
    token = _expect(
        client.post("/auth/token/login/", data={"username": ADMIN_EMAIL, "password": password}),
        200,
        "log in",
    )["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    # The progress route (history tables) is newer than Fractal's API: use it when served.
    schema = _expect(client.get("/openapi.json"), 200, "read the OpenAPI schema")
    server.has_progress_route = PROGRESS_ROUTE in schema.get("paths", {})
    manifest = json.loads((DEMO_TASKS_ROOT / "__FRACTAL_MANIFEST__.json").read_text())
    tasks = _expect(
        client.post(
            "/api/v2/task/collect/custom/",
            json={
                "label": "fractal-like-demo-tasks",
                "python_interpreter": sys.executable,
                "manifest": manifest,
                "version": __version__,
                "package_root": str(DEMO_TASKS_ROOT),
            },
        ),
        201,
        "register the demo tasks",
    )
    by_name = {task["name"]: task for task in tasks}
    console.print(f"registered {len(tasks)} tasks: {', '.join(sorted(by_name))}")
    project = _expect(client.post("/api/v2/project/", json={"name": "demo"}), 201, "make a project")
    pid = project["id"]
    dataset = _expect(
        client.post(f"/api/v2/project/{pid}/dataset/", json={"name": "demo-plate"}),
        201,
        "make a dataset",
    )
    workflow = _expect(
        client.post(f"/api/v2/project/{pid}/workflow/", json={"name": "demo workflow"}),
        201,
        "make a workflow",
    )
    step_args = {
        "create_demo_images": {"args_non_parallel": {"num_images": images}},
        "measure_demo_image": {"args_parallel": dict(MEASURE_ARGS)},
        "summarise_demo": {},
    }
    _expect(
        client.post(
            f"/api/v2/project/{pid}/workflow/{workflow['id']}/wftask/",
            json=[{"task_id": by_name[name]["id"], **step_args[name]} for name, _ in STEPS],
        ),
        201,
        "add the tasks to the workflow",
    )
    job = _expect(
        client.post(
            f"/api/v2/project/{pid}/job/submit/"
            f"?workflow_id={workflow['id']}&dataset_id={dataset['id']}",
            json={},
        ),
        202,
        "submit the job",
    )
    jid = job["id"]
    console.print(
        f"submitted job {jid}: workflow '{workflow['name']}' "
        f"({' -> '.join(label for _, label in STEPS)}) on {images} image(s)",
        soft_wrap=True,
    )
    started = time.monotonic()
    job = _follow(console, client, server, pid, dataset["id"], jid, images)
    took = time.monotonic() - started

    url = server.url
    working_dir = Path(job["working_dir"] or "")
    if job["status"] != "done":
        console.print(f"\n[red bold]job {jid} {job['status']}[/red bold] after {took:.1f} s")
        console.print(escape(job.get("executor_error_log") or "(no error log)"), soft_wrap=True)
        _print_logs(console, working_dir, url, pid, jid, keep)
        return 1
    page = _expect(
        client.post(f"/api/v2/project/{pid}/dataset/{dataset['id']}/images/query/", json={}),
        200,
        "read the images",
    )
    zarr_dir = dataset["zarr_dir"]
    console.print(f"\n[green bold]job {jid} done[/green bold] in {took:.1f} s")
    console.print(f"images of dataset '{dataset['name']}' under {escape(zarr_dir)}", soft_wrap=True)
    console.print(_images_table(page["items"], zarr_dir))
    summary = Path(zarr_dir) / "summary.json"
    with contextlib.suppress(OSError, ValueError):
        content = json.dumps(json.loads(summary.read_text()))
        console.print(f"summary ({summary}): {content}", soft_wrap=True, markup=False)
    _print_logs(console, working_dir, url, pid, jid, keep)
    _print_login(console, server, folder, password, keep)
    return 0


def _follow(
    console: Console, client: Any, server: DemoServer, pid: int, did: int, jid: int, images: int
) -> dict[str, Any]:
    """Poll the job until it ends, showing units done / total per task."""
    expected = {"create_demo_images": 1, "measure_demo_image": images, "summarise_demo": 1}
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
    )
    deadline = time.monotonic() + JOB_TIMEOUT
    with Progress(*columns, console=console) as progress:
        if server.has_progress_route:
            rows = {
                name: progress.add_task(f"{order}. {name}", total=expected[name], status="pending")
                for order, (name, _) in enumerate(STEPS, start=1)
            }
        else:
            rows = {"": progress.add_task("units", total=sum(expected.values()), status="")}
        while True:
            job = _expect(client.get(f"/api/v2/project/{pid}/job/{jid}/"), 200, "read the job")
            final = job["status"] in ("done", "failed")
            if server.has_progress_route:
                _show_task_progress(client, progress, rows, expected, pid, jid)
            else:
                _show_image_progress(client, progress, rows[""], job, pid, did)
            if final:
                return job
            if time.monotonic() > deadline:
                raise DemoError(f"job {jid} did not end within {JOB_TIMEOUT:.0f} s")
            time.sleep(POLL_SECONDS)


def _show_task_progress(
    client: Any,
    progress: Progress,
    rows: dict[str, Any],
    expected: dict[str, int],
    pid: int,
    jid: int,
) -> None:
    """Units done / total of each task, from the history tables (the progress route)."""
    response = client.get(f"/api/v2/project/{pid}/status/progress/", params={"job_id": jid})
    if response.status_code != 200:
        return
    for item in response.json().get("tasks", []):
        name = item.get("task_name")
        if name not in rows:
            continue
        total = item.get("num_units_total") or expected[name]
        progress.update(
            rows[name],
            total=total,
            completed=item.get("num_units_done", 0) + item.get("num_units_failed", 0),
            status=item.get("status", ""),
        )


def _show_image_progress(
    client: Any, progress: Progress, row: Any, job: dict[str, Any], pid: int, did: int
) -> None:
    """Without a progress route: the converter's unit is done once the dataset has images,
    a measure unit once its image has type `measured`, the summary once the job is done."""

    def count(type_filters: dict[str, bool]) -> int:
        response = client.post(
            f"/api/v2/project/{pid}/dataset/{did}/images/query/?page_size=1",
            json={"type_filters": type_filters},
        )
        return response.json().get("total_count", 0) if response.status_code == 200 else 0

    done = min(count({}), 1) + count({"measured": True}) + int(job["status"] == "done")
    progress.update(row, completed=done, status=job["status"])


def _images_table(found: list[dict[str, Any]], zarr_dir: str) -> Table:
    table = Table(title=f"{len(found)} image(s)")
    table.add_column("zarr_url (under the zarr_dir)", overflow="fold")
    table.add_column("attributes")
    table.add_column("types")
    prefix = zarr_dir.rstrip("/") + "/"
    for image in sorted(found, key=lambda item: item["zarr_url"]):
        url = image["zarr_url"]
        table.add_row(
            escape(url.removeprefix(prefix)),
            escape("\n".join(f"{k}={v}" for k, v in sorted(image["attributes"].items()))),
            escape("\n".join(f"{k}={v}" for k, v in sorted(image["types"].items()))),
        )
    return table


def _print_logs(
    console: Console, working_dir: Path, url: str, pid: int, jid: int, keep: bool
) -> None:
    console.print("\nlogs of the job:")
    lines = [
        f"  working folder: {working_dir}",
        f"  workflow log:   {working_dir / 'workflow.log'}",
        f"  as a zip:       {url}/api/v2/project/{pid}/job/{jid}/download/",
    ]
    if not keep:
        lines.append("  (the demo ran in a temporary folder, removed now: use --keep to keep it)")
    for line in lines:
        console.print(escape(line), soft_wrap=True)


def _print_login(
    console: Console, server: DemoServer, folder: Path, password: str, keep: bool
) -> None:
    login = (
        f"FRACTAL_SERVER={server.url} FRACTAL_USER={ADMIN_EMAIL} "
        f"FRACTAL_PASSWORD={password} fractal user whoami"
    )
    if keep:
        port = server.url.rsplit(":", 1)[1]
        console.print("\nthe demo server stops now; to serve the demo's data again and log in:")
        console.print(
            f"  FRACTAL_LIKE_DATA_DIR={folder} fractal-like serve --port {port}",
            soft_wrap=True,
            markup=False,
        )
        console.print(f"  {login}", soft_wrap=True, markup=False)
    else:
        console.print(
            f"\nthe demo server ran at {server.url} (user {ADMIN_EMAIL}, password {password}); "
            "it stops now and its temporary folder is removed. Run with --keep to serve it "
            "again later and log in with:",
            soft_wrap=True,
            markup=False,
        )
        console.print(f"  {login}", soft_wrap=True, markup=False)
