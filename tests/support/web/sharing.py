"""The people a project is shared with: a colleague who accepts and leaves, a guest who reads."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from .scientist import DEMO_IMAGES, dataset_images
from .servers import API_PROJECT, Cast
from .walk import Walk, log_in, log_out, new_page, wait_loaded


def _project_name(walk: Walk) -> str:
    return walk.state.get("project_name", API_PROJECT)


def accept_invitation(walk: Walk, page: Page) -> str:
    walk.goto(page, "/v2/projects")
    name = _project_name(walk)
    alert = page.locator(".alert", has=page.get_by_text(name))
    expect(alert).to_contain_text("wants to share project")
    alert.get_by_role("button", name="Accept").click()
    expect(alert).to_have_count(0)
    page.get_by_role("button", name="Shared with me").click()
    row = page.get_by_role("row", name=re.compile(re.escape(name)))
    expect(row).to_be_visible()
    row.get_by_role("link", name=name).click()
    page.wait_for_url(re.compile(r"/v2/projects/\d+$"))
    wait_loaded(page)
    return f"accepted the invitation to {name!r} from its alert and opened the project"


def leave_project(walk: Walk, page: Page) -> str:
    walk.goto(page, "/v2/projects")
    page.get_by_role("button", name="Shared with me").click()
    row = page.get_by_role("row", name=re.compile(re.escape(_project_name(walk))))
    row.get_by_role("button", name="Leave").click()
    page.locator(".modal.show").get_by_role("button", name="Confirm").click()
    expect(row).to_have_count(0)
    return "left the shared project"


def guest_reads(walk: Walk, page: Page) -> str:
    walk.goto(page, "/v2/projects")
    row = page.get_by_role("row", name=re.compile(re.escape(_project_name(walk))))
    expect(row).to_be_visible()
    dataset_images(walk, page, DEMO_IMAGES if "job_done" in walk.state else 0)
    return "the shared project is listed; its dataset's images are shown"


def walk_as_colleague(walk: Walk, browser: Browser, cast: Cast) -> None:
    page = new_page(walk, browser)
    login = walk.step(
        page, "colleague: log in", lambda p: log_in(walk, p, cast.colleague, cast.password)
    )
    if login:
        walk.step(page, "colleague: accept the invitation", lambda p: accept_invitation(walk, p))
        walk.step(page, "colleague: leave the project", lambda p: leave_project(walk, p))
    page.context.close()


def walk_as_guest(walk: Walk, browser: Browser, cast: Cast) -> None:
    page = new_page(walk, browser)
    if walk.step(page, "guest: log in", lambda p: log_in(walk, p, cast.guest, cast.password)):
        walk.step(page, "guest: read the shared project", lambda p: guest_reads(walk, p))
        walk.step(page, "guest: log out", lambda p: log_out(walk, p, cast.guest))
    page.context.close()
