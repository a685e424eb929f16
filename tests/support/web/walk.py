"""The walk's machinery: steps recorded with screenshots, and the acts every role shares.

Each step is recorded (passed or failed, with the error and a screenshot) and a failed
step does not stop the walk: later steps try again from a fresh page, so one missing
route does not hide what else works. Selectors are the labels a person reads on the page.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page, expect

STEP_TIMEOUT_MS = 20_000


@dataclass
class StepResult:
    name: str
    ok: bool
    detail: str
    screenshot: str | None
    seconds: float


@dataclass
class Walk:
    """The state shared by the steps: where the page is and what it has made so far."""

    web_url: str
    run_dir: Path
    python: str
    results: list[StepResult] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    page_errors: list[str] = field(default_factory=list)

    def step(
        self, page: Page, name: str, action: Callable[[Page], str], needs: tuple[str, ...] = ()
    ) -> bool:
        missing = [key for key in needs if key not in self.state]
        if missing:
            self.results.append(
                StepResult(name, False, f"not tried: needs {', '.join(missing)}", None, 0)
            )
            return False
        started = time.monotonic()
        shot = self.run_dir / "screenshots" / f"{len(self.results) + 1:02d}-{_slug(name)}.png"
        shot.parent.mkdir(exist_ok=True)
        try:
            detail = action(page)
            ok = True
        except Exception as error:  # every failure is a finding to report
            ok = False
            detail = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
            with (self.run_dir / "tracebacks.txt").open("a") as tracebacks:
                tracebacks.write(f"== {name}\n{traceback.format_exc()}\n")
        try:
            page.screenshot(path=str(shot), full_page=True)
            where = str(shot)
        except Exception:  # a page that cannot be shot is still a result
            where = None
        self.results.append(StepResult(name, ok, detail, where, time.monotonic() - started))
        return ok

    def goto(self, page: Page, path: str) -> None:
        page.goto(self.web_url + path)
        wait_loaded(page)
        if status := error_page_status(page):
            body = page.locator("body").inner_text().strip().replace("\n", " ")
            raise AssertionError(f"{path} shows the error page {status}: {body[:200]}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50]


def wait_loaded(page: Page) -> None:
    """fractal-web shows `.loading.show` while a page fetches its data."""
    page.wait_for_load_state("networkidle")
    expect(page.locator(".loading.show")).to_have_count(0)


def error_page_status(page: Page) -> str | None:
    """The status SvelteKit's error page shows (its heading is the bare number), if shown."""
    heading = page.locator("h1").first
    if heading.count() and re.fullmatch(r"\d{3}", text := heading.inner_text().strip()):
        return text
    return None


def page_error(page: Page) -> str | None:
    """The text of an error alert, if the page shows one."""
    for selector in (".alert-danger", ".alert.border-danger"):
        alert = page.locator(selector)
        if alert.count() and alert.first.is_visible():
            return alert.first.inner_text().strip()[:300]
    return None


def button(page: Page, label: str) -> Locator:
    """A button by its text: Bootstrap's icons put a glyph before it in the accessible name."""
    return page.get_by_role("button", name=re.compile(rf"(^|\s){re.escape(label)}$"))


def log_in(walk: Walk, page: Page, email: str, password: str) -> str:
    walk.goto(page, "/auth/login")
    basic = page.get_by_role("button", name="Log in with username & password")
    if basic.count():
        basic.click()
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url(re.compile(r"/v2/projects$"))
    wait_loaded(page)
    cookies = [cookie["name"] for cookie in page.context.cookies()]
    if "fastapiusersauth" not in cookies:
        raise AssertionError(f"no fastapiusersauth cookie after login (cookies: {cookies})")
    return f"landed on /v2/projects with the fastapiusersauth cookie as {email}"


def visit(walk: Walk, page: Page, path: str, search_button: str | None = None) -> str:
    """Open a page (and press its search button): it must show no error."""
    walk.goto(page, path)
    if search_button:
        button(page, search_button).first.click()
        page.wait_for_load_state("networkidle")
        expect(page.locator(".spinner-border:visible")).to_have_count(0, timeout=STEP_TIMEOUT_MS)
    if error := page_error(page):
        raise AssertionError(f"the page shows an error: {error}")
    return f"{path} shown without error" + (f" after '{search_button}'" if search_button else "")


def log_out(walk: Walk, page: Page, email: str) -> str:
    walk.goto(page, "/v2/projects")
    page.get_by_role("button", name=email).click()
    page.get_by_role("button", name="Logout").click()
    wait_loaded(page)
    expect(page.get_by_role("link", name="Login").first).to_be_visible()
    if "fastapiusersauth" in [cookie["name"] for cookie in page.context.cookies()]:
        raise AssertionError("the fastapiusersauth cookie is still set after logout")
    return "logged out; the cookie is gone"


def new_page(walk: Walk, browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: walk.page_errors.append(f"{page.url}: {error}"))
    return page


def through_proxy(walk: Walk, page: Page, method: str, path: str, body: Any = None) -> Any:
    """A call through fractal-web's own /api proxy with the page's cookie, as its tests do."""
    response = page.request.fetch(walk.web_url + path, method=method, data=body)
    if not response.ok:
        raise AssertionError(f"{method} {path}: HTTP {response.status} {response.text()[:200]}")
    return response.json()


def fall_back(walk: Walk, name: str, action: Callable[[], str]) -> None:
    """When the page could not make an object, make it another way so the walk goes on."""
    try:
        detail = action()
        walk.results.append(StepResult(f"(fallback) {name}", True, detail, None, 0))
    except Exception as error:  # the fallback failing is reported like a step
        walk.results.append(StepResult(f"(fallback) {name}", False, str(error)[:300], None, 0))
