"""The admin's walk: every admin page, its search, the objects the others made."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from .servers import SCIENTIST_EMAIL
from .walk import STEP_TIMEOUT_MS, Walk, log_in, new_page, visit, wait_loaded

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
    # user 1, the scientist 2; the bootstrapped resource, profile and group are 1; the demo
    # tasks are task group 1).
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
    ("/v2/admin/task-groups/1/reset", None),
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
    for path, button in ADMIN_PAGES:
        label = f"open {path}" + (f" and press '{button}'" if button else "")
        walk.step(page, label, lambda p, path=path, button=button: visit(walk, p, path, button))
    walk.step(page, "show the scientist's job logs as the admin", lambda p: admin_job_logs(walk, p))
    walk.step(page, "verify the guest's invitation", lambda p: verify_guest(walk, p, guest))
    walk.step(page, "download the users CSV", lambda p: users_csv(walk, p))
    walk.step(page, "impersonate the scientist", lambda p: impersonate(walk, p))
    page.context.close()
