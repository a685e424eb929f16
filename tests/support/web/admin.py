"""The admin's walk: every admin page, its search, the objects the others made."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from .servers import SCIENTIST_EMAIL
from .walk import (
    STEP_TIMEOUT_MS,
    Walk,
    button,
    log_in,
    new_page,
    page_error,
    through_proxy,
    visit,
    wait_loaded,
)

ADMIN_PAGES: tuple[tuple[str, str | None], ...] = (
    ("/v2/admin", None),
    ("/v2/admin/users", None),
    ("/v2/admin/groups", None),
    ("/v2/admin/resources", None),
    ("/v2/admin/jobs", "Search jobs"),
    ("/v2/admin/task-groups", "Search task groups"),
    ("/v2/admin/task-groups/activities", "Search activities"),
    ("/v2/admin/tasks", "Search tasks"),
    ("/v2/admin/projects", "Search projects"),
    ("/v2/admin/sharing", "Search"),
    ("/v2/admin/accounting", "Search"),
    ("/v2/admin/settings", None),
    ("/v2/admin/impersonate", None),
    ("/v2/admin/users-info", None),
    # Detail pages of the objects the check made (ids on a fresh database: the admin is
    # user 1, the scientist 2; the bootstrapped resource, profile and group are 1). The
    # demo tasks' task group (1) has its own step: task_group_reset_page.
    ("/v2/admin/users/2", None),
    ("/v2/admin/users/2/edit", None),
    ("/v2/admin/users/register", None),
    ("/v2/admin/groups/1", None),
    ("/v2/admin/groups/1/edit", None),
    ("/v2/admin/resources/1", None),
    ("/v2/admin/resources/1/edit", None),
    ("/v2/admin/resources/1/profiles", None),
    ("/v2/admin/resources/1/profiles/1", None),
    ("/v2/admin/resources/1/profiles/1/edit", None),
)
# The demo tasks, registered through the Custom Python env form: origin "other".
DEMO_TASK_GROUP_ID = 1
# fractal-web offers a reset (a rebuild of the environment) only to the task groups whose
# environment the server installed; for any other origin its reset page shows, by design, a
# red notice instead of the form, against the reference server as against ours.
RESETTABLE_ORIGINS = ("pypi", "wheel-file", "pixi")


def task_group_reset_page(walk: Walk, page: Page, task_group_id: int) -> str:
    """The reset page of a task group: it must show the group its loader read.

    With a resettable origin the page must show its form and no error; with another one,
    fractal-web's own notice that names that origin, and no other error.
    """
    path = f"/v2/admin/task-groups/{task_group_id}/reset"
    walk.goto(page, path)
    group = through_proxy(walk, page, "GET", f"/api/admin/v2/task-group/{task_group_id}/")
    origin, name = group["origin"], group["pkg_name"]
    card = page.locator(".card-body").first
    expect(card).to_contain_text(name)
    expect(card).to_contain_text(origin)
    error = page_error(page)
    if origin in RESETTABLE_ORIGINS:
        if error:
            raise AssertionError(f"the page shows an error: {error}")
        expect(button(page, "Proceed")).to_be_visible()
        return f"{path} shows task group {name!r} (origin {origin}) with its reset form"
    notice = f"Task group reset is not available for {origin} origin."
    if error is None or " ".join(error.split()) != notice:
        raise AssertionError(f"expected fractal-web's notice {notice!r}, the page shows {error!r}")
    return (
        f"{path} shows task group {name!r} (origin {origin}) and fractal-web's notice that"
        f" it resets only {', '.join(RESETTABLE_ORIGINS)} task groups"
    )


def verify_guest(walk: Walk, page: Page, guest: str) -> str:
    """An admin accepts a guest's read-only invitation for them (admin sharing page)."""
    visit(walk, page, "/v2/admin/sharing", "Search")
    row = page.get_by_role("row", name=re.compile(re.escape(guest)))
    row.get_by_role("button", name="Verify").click()
    expect(row.get_by_role("button", name="Verify")).to_have_count(0)
    return f"verified {guest}'s invitation from the admin sharing page"


def admin_job_logs(walk: Walk, page: Page) -> str:
    """The admin's jobs table: the scientist's job, and its logs from the admin route."""
    visit(walk, page, "/v2/admin/jobs", "Search jobs")
    row = page.get_by_role("row").filter(has_text=SCIENTIST_EMAIL).first
    expect(row).to_be_visible()
    row.get_by_role("button", name="Logs").click()
    modal = page.locator(".modal.show")
    expect(modal).to_be_visible()
    expect(modal.locator(".spinner-border:visible")).to_have_count(0, timeout=STEP_TIMEOUT_MS)
    text = modal.inner_text()
    if len(text.strip()) < 40:
        raise AssertionError(f"the logs modal is nearly empty: {text!r}")
    return f"the scientist's job listed; its logs modal shows {len(text)} characters"


def users_csv(walk: Walk, page: Page) -> str:
    walk.goto(page, "/v2/admin/users-info")
    with page.expect_download() as download:
        page.get_by_label("Download CSV").click()
    lines = Path(download.value.path()).read_text().splitlines()
    if len(lines) < 2 or SCIENTIST_EMAIL not in "\n".join(lines):
        raise AssertionError(f"the users CSV lacks the scientist: {lines[:3]}")
    return f"users CSV downloaded: {len(lines) - 1} user(s), columns {lines[0][:80]}"


def impersonate(walk: Walk, page: Page) -> str:
    """The admin becomes the scientist (the page's cookie changes: do it last)."""
    walk.goto(page, "/v2/admin/impersonate")
    page.get_by_label("User").select_option(label=SCIENTIST_EMAIL)
    page.get_by_role("button", name="Impersonate").click()
    page.wait_for_url(re.compile(r"/v2/projects$"))
    wait_loaded(page)
    expect(page.get_by_role("button", name=SCIENTIST_EMAIL)).to_be_visible()
    return "impersonated the scientist: the page now shows their projects under their name"


def walk_as_admin(walk: Walk, browser: Browser, email: str, password: str, guest: str) -> None:
    page = new_page(walk, browser)
    if not walk.step(page, "log in as the admin", lambda p: log_in(walk, p, email, password)):
        return
    for path, search in ADMIN_PAGES:
        label = f"open {path}" + (f" and press '{search}'" if search else "")
        walk.step(page, label, lambda p, path=path, search=search: visit(walk, p, path, search))
    walk.step(
        page,
        f"open /v2/admin/task-groups/{DEMO_TASK_GROUP_ID}/reset",
        lambda p: task_group_reset_page(walk, p, DEMO_TASK_GROUP_ID),
    )
    walk.step(page, "show the scientist's job logs as the admin", lambda p: admin_job_logs(walk, p))
    walk.step(page, "verify the guest's invitation", lambda p: verify_guest(walk, p, guest))
    walk.step(page, "download the users CSV", lambda p: users_csv(walk, p))
    walk.step(page, "impersonate the scientist", lambda p: impersonate(walk, p))
    page.context.close()
