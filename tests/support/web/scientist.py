"""The scientist's walk: from login to a stopped job, through the page only.

Where the page cannot make an object (a project, a dataset, tasks, a workflow), a
`(fallback)` step makes it through fractal-web's own /api proxy so later steps still run.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from fractal_like.examples import DEMO_TASKS_ROOT

from ..runner_support import COLLECT_URL, collect_body
from .servers import API_DATASET, API_PROJECT, Cast, Scientist
from .walk import (
    STEP_TIMEOUT_MS,
    Walk,
    fall_back,
    log_in,
    log_out,
    new_page,
    page_error,
    through_proxy,
    visit,
    wait_loaded,
)

JOB_TIMEOUT_S = 180
CONVERTER = "create_demo_images"
DEMO_IMAGES = 8  # the converter's default
FRACTAL_JOB_STATUSES = ("submitted", "done", "failed")
SLEEP_SECONDS = 20  # each unit of the job that the walk stops


def list_projects(walk: Walk, page: Page, api_project: str) -> str:
    walk.goto(page, "/v2/projects")
    expect(page.get_by_role("row", name=re.compile(api_project))).to_be_visible()
    rows = page.get_by_role("table").first.get_by_role("row").count() - 1
    return f"{rows} project(s) listed, including {api_project!r} made through the API"


def create_project(walk: Walk, page: Page) -> str:
    walk.goto(page, "/v2/projects")
    page.get_by_role("button", name="Create new project").click()
    modal = page.locator(".modal.show")
    modal.get_by_label("Project name").fill("made-in-the-browser")
    modal.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/v2/projects/\d+$"))
    wait_loaded(page)
    walk.state["project_id"] = int(page.url.rstrip("/").rsplit("/", 1)[1])
    walk.state["project_name"] = "made-in-the-browser"
    return f"project {walk.state['project_id']} created, its page shown"


def create_dataset(walk: Walk, page: Page) -> str:
    walk.goto(page, f"/v2/projects/{walk.state['project_id']}")
    page.get_by_role("button", name="Create new dataset").click()
    modal = page.locator(".modal.show")
    modal.get_by_role("textbox", name="Dataset Name").fill("browser-dataset")
    modal.get_by_role("button", name="Save").click()
    expect(page.locator(".modal.show")).to_have_count(0)
    link = page.get_by_role("link", name="browser-dataset")
    expect(link).to_be_visible()
    link.click()
    page.wait_for_url(re.compile(r"/datasets/\d+$"))
    wait_loaded(page)
    walk.state["dataset_id"] = int(page.url.rstrip("/").rsplit("/", 1)[1])
    walk.state["dataset_name"] = "browser-dataset"
    return f"dataset {walk.state['dataset_id']} created through the modal"


def dataset_images(walk: Walk, page: Page, expected: int) -> str:
    walk.goto(page, f"/v2/projects/{walk.state['project_id']}/datasets/{walk.state['dataset_id']}")
    if error := page_error(page):
        raise AssertionError(f"the dataset page shows an error: {error}")
    zarr_rows = page.get_by_role("row").filter(has_text=".zarr")
    if expected:
        expect(zarr_rows.first).to_be_visible(timeout=STEP_TIMEOUT_MS)
    shown = zarr_rows.count()
    if shown < min(expected, 10):
        raise AssertionError(f"{shown} image row(s) shown, expected {expected}")
    return f"images page shown with {shown} image row(s)"


def register_task_in_page(walk: Walk, page: Page) -> str:
    """Tasks management, `Custom Python env`: the demo task package, as an admin would."""
    walk.goto(page, "/v2/tasks/management")
    page.get_by_text("Custom Python env").click()
    page.get_by_role("textbox", name="Python Interpreter").fill(walk.python)
    page.get_by_role("textbox", name="Label").fill("demo-tasks")
    manifest = walk.run_dir / "__FRACTAL_MANIFEST__.json"
    shutil.copy(DEMO_TASKS_ROOT / "__FRACTAL_MANIFEST__.json", manifest)
    with page.expect_file_chooser() as chooser:
        page.get_by_text("Manifest", exact=True).click()
    chooser.value.set_files(str(manifest))
    page.get_by_role("textbox", name="Version").fill("1.0.0")
    page.get_by_role("textbox", name="Package Folder").fill(str(DEMO_TASKS_ROOT))
    page.get_by_role("button", name="Collect").click()
    expect(page.get_by_text("Tasks collected successfully")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    walk.state["tasks"] = True
    return "demo tasks collected through the Custom Python env form"


def create_workflow(walk: Walk, page: Page) -> str:
    walk.goto(page, f"/v2/projects/{walk.state['project_id']}")
    page.get_by_role("button", name="Create new workflow").click()
    modal = page.locator(".modal.show")
    modal.get_by_label("Workflow name").fill("browser-workflow")
    modal.get_by_role("button", name="Create empty workflow").click()
    page.wait_for_url(re.compile(r"/workflows/\d+$"))
    wait_loaded(page)
    walk.state["workflow_id"] = int(page.url.rstrip("/").rsplit("/", 1)[1])
    return f"workflow {walk.state['workflow_id']} created, its page shown"


def add_task(walk: Walk, page: Page) -> str:
    walk.goto(page, _workflow_path(walk))
    page.get_by_role("button", name="Add task to workflow").click()
    modal = page.locator(".modal.show")
    expect(modal.locator(".spinner-border")).to_have_count(0, timeout=STEP_TIMEOUT_MS)
    modal.get_by_placeholder("Search...").fill(CONVERTER)
    row = (
        modal.get_by_role("row")
        .filter(has=page.get_by_role("checkbox", name=CONVERTER, exact=True))
        .filter(has=page.get_by_role("button", name="Add task"))
        .first
    )
    row.get_by_role("button", name="Add task").click()
    expect(page.locator(".modal.show")).to_have_count(0)
    expect(page.get_by_role("button", name=CONVERTER).first).to_be_visible()
    walk.state["workflow_task"] = True
    return f"{CONVERTER} added to the workflow"


def run_job(walk: Walk, page: Page) -> str:
    walk.goto(page, _workflow_path(walk))
    page.get_by_role("combobox", name="Dataset", exact=True).first.select_option(
        walk.state["dataset_name"]
    )
    page.get_by_role("button", name="Run workflow").click()
    modal = page.locator(".modal.show")
    modal.get_by_role("button", name="Run", exact=True).click()
    modal.get_by_role("button", name="Confirm").click()
    expect(page.locator(".modal.show")).to_have_count(0, timeout=STEP_TIMEOUT_MS)
    walk.state["job_submitted"] = True
    status = _wait_for_job_end(walk, page)
    walk.goto(page, _workflow_path(walk))  # the page as it shows an ended job
    expect(page.get_by_role("button", name="Stop workflow")).to_be_hidden()
    failed = page.get_by_text("The last job failed with the following error")
    if status != "done" or failed.count():
        alert = page.locator(".alert.border-danger")
        raise AssertionError(f"job {status}: {alert.inner_text()[:300] if alert.count() else ''}")
    walk.state["job_done"] = True
    return "job submitted from the Run workflow modal; it ended done and the page shows no error"


def _wait_for_job_end(walk: Walk, page: Page) -> str:
    """The job's status once it has ended, read as the page reads it (through its proxy)."""
    path = f"/api/v2/project/{walk.state['project_id']}/workflow/{walk.state['workflow_id']}/job/"
    seen = walk.state.setdefault("job_statuses", [])
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        jobs = through_proxy(walk, page, "GET", path)
        status = jobs[-1]["status"] if jobs else None
        if status and status not in seen:
            seen.append(status)
        if status in ("done", "failed"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"the job did not end within {JOB_TIMEOUT_S} s")


def job_statuses_as_fractal(walk: Walk, page: Page) -> str:
    """fractal-web treats only `submitted` as a live job (Stop button, polling, badges)."""
    seen = walk.state["job_statuses"]
    unknown = [status for status in seen if status not in FRACTAL_JOB_STATUSES]
    if unknown:
        raise AssertionError(
            f"the job was read as {seen}: {unknown} not in Fractal's {FRACTAL_JOB_STATUSES}"
            " (fractal-web shows no Stop button and stops polling for them)"
        )
    return f"the job was read as {seen}"


def job_logs(walk: Walk, page: Page) -> str:
    walk.goto(page, _workflow_path(walk) + "/jobs")
    row = page.get_by_role("row").filter(has=page.get_by_role("button", name="Logs")).first
    expect(row).to_be_visible(timeout=STEP_TIMEOUT_MS)
    status = row.inner_text().replace("\n", " ").replace("\t", " ")
    if "done" not in status:
        raise AssertionError(f"the job row does not say done: {status[:200]}")
    row.get_by_role("button", name="Logs").click()
    modal = page.locator(".modal.show")
    expect(modal).to_be_visible()
    expect(modal.locator(".spinner-border")).to_have_count(0, timeout=STEP_TIMEOUT_MS)
    text = modal.inner_text()
    if len(text.strip()) < 40:
        raise AssertionError(f"the logs modal is nearly empty: {text!r}")
    return f"jobs table says done; logs modal shows {len(text)} characters"


def edit_arguments(walk: Walk, page: Page) -> str:
    """The task's argument form: change one and save it (PATCH of the workflow task)."""
    walk.goto(page, _workflow_path(walk))
    page.get_by_role("button", name=CONVERTER).first.click()
    page.get_by_role("textbox", name="Plate").fill("edited")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Arguments changes saved successfully")).to_be_visible()
    return "argument Plate changed and saved from the task's form"


def task_runs(walk: Walk, page: Page) -> str:
    walk.goto(page, _workflow_path(walk))
    page.get_by_role("button", name=f"Show runs for {CONVERTER}").click()
    expect(page.get_by_role("button", name="Run 1", exact=True)).to_be_visible()
    return "the task's runs are listed (Run 1)"


def star_workflow(walk: Walk, page: Page) -> str:
    walk.goto(page, f"/v2/projects/{walk.state['project_id']}")
    star = page.get_by_role("button", name="star workflow").first
    icon_before = star.locator("i").get_attribute("class")
    star.click()
    expect(star.locator("i")).not_to_have_attribute("class", icon_before or "")
    return "the workflow starred from the project page"


def export_dataset(walk: Walk, page: Page) -> str:
    walk.goto(page, f"/v2/projects/{walk.state['project_id']}/datasets/{walk.state['dataset_id']}")
    with page.expect_download() as download:
        page.get_by_label("Export dataset").click()
    exported = json.loads(Path(download.value.path()).read_text())
    if exported.get("name") != walk.state["dataset_name"]:
        raise AssertionError(f"the exported dataset is not ours: {str(exported)[:200]}")
    return f"dataset exported as {download.value.suggested_filename}"


def export_workflow(walk: Walk, page: Page) -> str:
    walk.goto(page, _workflow_path(walk))
    with page.expect_download() as download:
        page.get_by_role("button", name="Export workflow").click()
    exported = json.loads(Path(download.value.path()).read_text())
    names = [wftask["task"].get("name") for wftask in exported.get("task_list", [])]
    if names != [CONVERTER]:
        raise AssertionError(f"the exported workflow lists {names}")
    return f"workflow exported as {download.value.suggested_filename}"


def create_template(walk: Walk, page: Page) -> str:
    walk.goto(page, _workflow_path(walk))
    page.get_by_role("button", name="Create template").click()
    modal = page.locator(".modal.show")
    modal.get_by_role("button", name="Create template").click()
    page.wait_for_url(re.compile(r"/v2/templates\?template_id=\d+"))
    wait_loaded(page)
    expect(page.get_by_role("row", name=re.compile("browser-workflow")).first).to_be_visible()
    return "template made from the workflow and listed on the templates page"


def stop_running_job(walk: Walk, page: Page) -> str:
    """A job of long units (tests/support/tasks_pkg's `sleep`), stopped with the page's button.

    The workflow is made through the page's proxy; what is checked is the page, opened
    once a runner has the job: its Stop workflow button, and the job ending failed.
    """
    project = walk.state["project_id"]
    tasks = through_proxy(walk, page, "POST", COLLECT_URL, collect_body())
    sleep_id = next(task["id"] for task in tasks if task["name"] == "sleep")
    workflow = through_proxy(
        walk, page, "POST", f"/api/v2/project/{project}/workflow/", {"name": "stop-me"}
    )
    wftasks = f"/api/v2/project/{project}/workflow/{workflow['id']}/wftask/"
    body = [{"task_id": sleep_id, "args_parallel": {"seconds": SLEEP_SECONDS}}]
    through_proxy(walk, page, "POST", wftasks, body)
    walk.goto(page, f"/v2/projects/{project}/workflows/{workflow['id']}")
    page.get_by_role("combobox", name="Dataset", exact=True).first.select_option(
        walk.state["dataset_name"]
    )
    page.get_by_role("button", name="Run workflow").click()
    modal = page.locator(".modal.show")
    modal.get_by_role("button", name="Run", exact=True).click()
    modal.get_by_role("button", name="Confirm").click()
    jobs = f"/api/v2/project/{project}/workflow/{workflow['id']}/job/"
    # Once a runner has the job, open its page afresh, as a user coming back to it would.
    expect(page.locator(".modal.show")).to_have_count(0)
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while not (listed := through_proxy(walk, page, "GET", jobs)) or (
        listed[-1]["status"] == "submitted" and time.monotonic() < deadline
    ):
        if time.monotonic() > deadline:
            raise AssertionError("no job listed after the Run workflow modal closed")
        time.sleep(0.2)
    walk.goto(page, f"/v2/projects/{project}/workflows/{workflow['id']}")
    try:
        stop = page.get_by_role("button", name="Stop workflow")
        expect(stop).to_be_visible(timeout=STEP_TIMEOUT_MS)
        stop.click()
        expect(page.get_by_text("Job cancellation request received")).to_be_visible()
    except AssertionError:
        job = through_proxy(walk, page, "GET", jobs)[-1]
        if job["status"] not in ("done", "failed"):  # never leave long units behind
            page.request.get(f"{walk.web_url}/api/v2/project/{project}/job/{job['id']}/stop/")
        raise AssertionError(
            f"no Stop workflow button while job {job['id']} is {job['status']!r}"
        ) from None
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (job := through_proxy(walk, page, "GET", jobs)[-1])["status"] not in ("done", "failed"):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job['id']} did not end after its stop")
        time.sleep(0.5)
    if job["status"] != "failed":
        raise AssertionError(f"the stopped job ended {job['status']!r}")
    return f"job {job['id']} stopped with the Stop workflow button; it ended failed"


def _workflow_path(walk: Walk) -> str:
    return f"/v2/projects/{walk.state['project_id']}/workflows/{walk.state['workflow_id']}"


SCIENTIST_PAGES = (
    "/v2/datasets",
    "/v2/jobs",
    "/v2/tasks",
    "/v2/tasks/management",
    "/v2/tasks/activities",
    "/v2/templates",
    "/profile",
)
# Admin pages, with the button that loads their table when they have one.


def share_project(walk: Walk, page: Page, email: str, permission: str) -> str:
    walk.goto(page, f"/v2/projects/{walk.state['project_id']}/sharing")
    page.get_by_role("textbox", name="User e-mail").fill(email)
    page.get_by_role("combobox", name="Permission").select_option(permission)
    page.get_by_role("button", name="Share").click()
    expect(page.get_by_role("row", name=re.compile(re.escape(email)))).to_be_visible()
    return f"invited {email} ({permission}) from the sharing page"


def _use_api_objects(walk: Walk, scientist: Scientist) -> str:
    walk.state.update(
        project_id=scientist.project_id,
        project_name=API_PROJECT,
        dataset_id=scientist.dataset_id,
        dataset_name=API_DATASET,
    )
    return (
        f"project {scientist.project_id} and dataset {scientist.dataset_id}, made through the API"
    )


def _register_tasksthrough_proxy(walk: Walk, page: Page) -> str:
    manifest = json.loads((DEMO_TASKS_ROOT / "__FRACTAL_MANIFEST__.json").read_text())
    body = {
        "label": "demo-tasks",
        "python_interpreter": walk.python,
        "manifest": manifest,
        "version": "1.0.0",
        "package_root": str(DEMO_TASKS_ROOT),
    }
    tasks = through_proxy(walk, page, "POST", "/api/v2/task/collect/custom/", body)
    walk.state["tasks"] = True
    return f"{len(tasks)} demo tasks registered through POST /api/v2/task/collect/custom/"


def _workflowthrough_proxy(walk: Walk, page: Page) -> str:
    path = f"/api/v2/project/{walk.state['project_id']}/workflow/"
    workflow = through_proxy(walk, page, "POST", path, {"name": "browser-workflow"})
    walk.state["workflow_id"] = workflow["id"]
    return f"workflow {workflow['id']} made through POST {path}"


def _workflow_taskthrough_proxy(walk: Walk, page: Page) -> str:
    tasks = through_proxy(walk, page, "GET", "/api/v2/task/")
    task_id = next(task["id"] for task in tasks if task["name"] == CONVERTER)
    path = (
        f"/api/v2/project/{walk.state['project_id']}/workflow/{walk.state['workflow_id']}/wftask/"
    )
    through_proxy(walk, page, "POST", path, [{"task_id": task_id}])
    walk.state["workflow_task"] = True
    return f"{CONVERTER} added through POST {path}"


def walk_as_scientist(walk: Walk, browser: Browser, cast: Cast) -> None:
    scientist = cast.scientist
    page = new_page(walk, browser)
    email, password = scientist.email, scientist.password
    if not walk.step(
        page, "log in through the login page", lambda p: log_in(walk, p, email, password)
    ):
        return
    walk.step(page, "list projects", lambda p: list_projects(walk, p, API_PROJECT))
    made = walk.step(page, "create a project in the page", lambda p: create_project(walk, p))
    made = made and walk.step(
        page, "create a dataset in the page", lambda p: create_dataset(walk, p)
    )
    if not made:
        fall_back(
            walk, "use the API's project and dataset", lambda: _use_api_objects(walk, scientist)
        )
    walk.step(
        page,
        "open the dataset's images (empty)",
        lambda p: dataset_images(walk, p, 0),
        ("dataset_id",),
    )
    if not walk.step(
        page,
        "register the demo tasks (Custom Python env)",
        lambda p: register_task_in_page(walk, p),
    ):
        fall_back(walk, "register the demo tasks", lambda: _register_tasksthrough_proxy(walk, page))
    if not walk.step(
        page, "create a workflow in the page", lambda p: create_workflow(walk, p), ("project_id",)
    ):
        fall_back(walk, "make the workflow", lambda: _workflowthrough_proxy(walk, page))
    if not walk.step(
        page,
        f"add {CONVERTER} to the workflow",
        lambda p: add_task(walk, p),
        ("workflow_id", "tasks"),
    ):
        fall_back(walk, f"add {CONVERTER}", lambda: _workflow_taskthrough_proxy(walk, page))
    walk.step(
        page,
        "run the workflow and wait for its end",
        lambda p: run_job(walk, p),
        ("workflow_id", "workflow_task", "dataset_id"),
    )
    walk.step(
        page,
        "job statuses read while it ran are Fractal's",
        lambda p: job_statuses_as_fractal(walk, p),
        ("job_statuses",),
    )
    walk.step(
        page, "show the job's status and logs", lambda p: job_logs(walk, p), ("job_submitted",)
    )
    walk.step(
        page,
        "open the dataset's images (after the job)",
        lambda p: dataset_images(walk, p, DEMO_IMAGES),
        ("job_done",),
    )
    for name, action in (
        ("change and save a task argument", edit_arguments),
        ("open the task's runs", task_runs),
        ("star the workflow", star_workflow),
        ("export the dataset", export_dataset),
        ("export the workflow", export_workflow),
        ("make a template of the workflow", create_template),
        ("stop a running job from the page", stop_running_job),
    ):
        walk.step(page, name, lambda p, action=action: action(walk, p), ("job_done",))
    walk.step(
        page,
        "invite the colleague (read, write)",
        lambda p: share_project(walk, p, cast.colleague, "Read, Write"),
        ("project_id",),
    )
    walk.step(
        page,
        "invite the guest (read)",
        lambda p: share_project(walk, p, cast.guest, "Read"),
        ("project_id",),
    )
    for path in SCIENTIST_PAGES:
        walk.step(page, f"open {path}", lambda p, path=path: visit(walk, p, path))
    walk.step(page, "log out", lambda p: log_out(walk, p, email))
    page.context.close()
