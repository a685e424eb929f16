"""`python -m tests.support.web.check`: the Fractal web client against fractal-like, in Chromium.

Starts `fractal-like serve` (fresh SQLite data folder, embedded local runner), a
recording proxy in front of it, and fractal-web built from the source folder named by
FRACTAL_WEB_DIR; then walks the web client in headless Chromium as a scientist, a
colleague the scientist shares a project with, the admin and a guest. It prints each
step's outcome and every API call that fractal-like refused (4xx/5xx), grouped by route,
and writes them with screenshots and logs into the run folder. Exit code: 0 every step
passed and no call was refused, 1 otherwise, 2 setup.

Not part of the test suite (fractal-web's source is not on the package registries):
see tests/support/web/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ..helpers import ADMIN_EMAIL, ADMIN_PASSWORD
from .recording_proxy import RecordingProxy, RefusedCall
from .servers import (
    build_fractal_web,
    make_cast,
    start_fractal_like,
    start_fractal_web,
)

if TYPE_CHECKING:
    from .walk import Walk

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Refusals the reference gives too, and that the page expects (it handles them).
EXPECTED_REFUSALS = {
    ("GET", "/api/v2/project/{id}/latest-job/", 404): (
        "no job yet of this workflow on this dataset: the reference answers 404 too, and the"
        " workflow page reads a 404 as 'no job'"
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.web.check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--web-dir",
        default=os.environ.get("FRACTAL_WEB_DIR"),
        help="fractal-web source (FRACTAL_WEB_DIR)",
    )
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", DEFAULT_CHROMIUM))
    parser.add_argument("--run-dir", help="folder for this run (default: a new temporary one)")
    parser.add_argument("--no-admin", action="store_true", help="skip the admin pages")
    args = parser.parse_args(argv)

    problem = _setup_problem(args.web_dir, args.chromium)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="fractal-web-check-")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    web_dir = Path(args.web_dir).resolve()
    print(f"run folder: {run_dir}")
    build_fractal_web(web_dir, run_dir / "fractal-web-build.log")
    walk, proxy = _run(web_dir, run_dir, args.chromium, admin=not args.no_admin)
    report = _report(walk, proxy.refused, proxy.calls)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    _print(report)
    print(f"\nscreenshots, logs and report.json: {run_dir}")
    return 0 if report["all_steps_passed"] and not report["refused_calls"] else 1


def _setup_problem(web_dir: str | None, chromium: str) -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the check drives Chromium with playwright: `.venv/bin/pip install playwright`"
    if not web_dir:
        return (
            "set FRACTAL_WEB_DIR (or --web-dir) to fractal-web's source"
            " (see tests/support/web/README.md)"
        )
    if not (Path(web_dir) / "package.json").is_file():
        return f"{web_dir} is not fractal-web's source folder (no package.json)"
    if not Path(chromium).is_file():
        return f"no Chromium at {chromium}: `apt-get install -y chromium` or set CHROMIUM"
    if not shutil.which("node"):
        return "fractal-web needs Node 20.19 or newer (`node` not found)"
    return None


def _run(web_dir: Path, run_dir: Path, chromium: str, admin: bool) -> tuple[Walk, RecordingProxy]:
    # Imported here, so that a missing playwright gets the message of _setup_problem.
    from playwright.sync_api import sync_playwright

    from .admin import walk_as_admin
    from .scientist import walk_as_scientist
    from .sharing import walk_as_colleague, walk_as_guest
    from .walk import Walk

    server = start_fractal_like(run_dir)
    proxy = web = None
    try:
        cast = make_cast(server.url, run_dir)
        proxy = RecordingProxy(server.url).start()
        web = start_fractal_web(web_dir, proxy.url, run_dir)
        walk = Walk(web.url, run_dir, sys.executable)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            try:
                walk_as_scientist(walk, browser, cast)
                walk_as_colleague(walk, browser, cast)
                if admin:
                    walk_as_admin(walk, browser, ADMIN_EMAIL, ADMIN_PASSWORD, cast.guest)
                    walk_as_guest(walk, browser, cast)
            finally:
                browser.close()
        return walk, proxy
    finally:
        if web:
            web.stop()
        if proxy:
            proxy.stop()
        server.stop()


def _report(walk: Walk, refused: list[RefusedCall], calls: int) -> dict[str, object]:
    by_route: dict[tuple[str, str, int], list[RefusedCall]] = defaultdict(list)
    for call in refused:
        by_route[(call.method, call.route, call.status)].append(call)
    grouped = [
        {"times": len(group), **group[0].as_dict(), "expected": EXPECTED_REFUSALS.get(key)}
        for key, group in by_route.items()
    ]
    return {
        "all_steps_passed": all(result.ok for result in walk.results),
        "steps": [asdict(result) for result in walk.results],
        "api_calls": calls,
        "refused_calls": [call for call in grouped if not call["expected"]],
        "expected_refusals": [call for call in grouped if call["expected"]],
        "page_errors": walk.page_errors,
    }


def _print(report: dict[str, object]) -> None:
    steps = report["steps"]
    assert isinstance(steps, list)
    passed = sum(step["ok"] for step in steps)
    print(f"\nsteps: {passed} passed, {len(steps) - passed} failed")
    for step in steps:
        print(f"  {'PASS' if step['ok'] else 'FAIL'}  {step['name']}: {step['detail']}")
    refused = report["refused_calls"]
    assert isinstance(refused, list)
    calls = report["api_calls"]
    print(f"\nAPI calls refused by fractal-like: {len(refused)} route(s), of {calls} calls")
    for call in refused:
        where = f"{call['method']} {call['route']} (x{call['times']}) e.g. {call['path']}"
        print(f"  {call['status']} {where}")
        if call["request_excerpt"]:
            print(f"      request: {call['request_excerpt'][:200]}")
        print(f"      answer:  {call['response_excerpt'][:300]}")
    expected = report["expected_refusals"]
    assert isinstance(expected, list)
    for call in expected:
        print(f"  (expected) {call['status']} {call['method']} {call['route']}: {call['expected']}")
    page_errors = report["page_errors"]
    assert isinstance(page_errors, list)
    if page_errors:
        print(f"\nJavaScript errors in the page: {len(page_errors)}")
        for error in page_errors[:20]:
            print(f"  {error[:300]}")


if __name__ == "__main__":
    sys.exit(main())
