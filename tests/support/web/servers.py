"""The three processes of a browser check: fractal-like, the recording proxy, fractal-web.

fractal-like runs as `fractal-like serve` on a fresh SQLite data folder with its embedded
local runner (tests/support/live_server.py starts it as the client tests do). The accounts (a
scientist, a colleague and a guest, each with a profile and a project dir) and the
scientist's first project with a dataset are made through the API, as an admin would.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..helpers import ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD
from ..live_server import LiveServer, free_port, start_server

SCIENTIST_EMAIL = "scientist@example.org"
COLLEAGUE_EMAIL = "colleague@example.org"
GUEST_EMAIL = "visitor@example.org"
API_PROJECT = "made-through-the-api"
API_DATASET = "api-dataset"


@dataclass
class Scientist:
    email: str
    password: str
    # Made through the API: the walk falls back on them when the page cannot make its own.
    project_id: int
    dataset_id: int


@dataclass
class Cast:
    scientist: Scientist
    colleague: str  # a user the scientist shares a project with (read and write)
    guest: str  # a guest account (is_guest), shared a project read-only
    password: str  # the colleague's and the guest's


# The server runs the code of the tree this check was loaded from (a `git archive` of a
# commit, say, while the work tree is being edited), not whatever the venv installed.
REPO_ROOT = Path(__file__).resolve().parents[3]


def start_fractal_like(run_dir: Path) -> LiveServer:
    return start_server(
        f"sqlite:///{run_dir / 'fractal-like.db'}",
        run_dir,
        runner=True,
        # The first admin gets a local resource and profile, shared with the scientist.
        FRACTAL_LIKE_BOOTSTRAP_LOCAL_RESOURCE="true",
        FRACTAL_LIKE_RUNNER_POLL_SECONDS="0.2",
        PYTHONPATH=str(REPO_ROOT),
    )


def _login(client: httpx.Client, email: str, password: str) -> None:
    response = client.post("/auth/token/login/", data={"username": email, "password": password})
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"


def _ok(response: httpx.Response, what: str) -> dict:
    if response.status_code >= 400:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text[:400]}")
    return response.json()


def _register(admin: httpx.Client, email: str, project_dir: Path, **fields: object) -> None:
    """A verified user with the admin's profile and one project dir; `fields` PATCHed on."""
    project_dir.mkdir()
    profile_id = _ok(admin.get("/auth/current-user/"), "read the admin")["profile_id"]
    body = {
        "email": email,
        "password": USER_PASSWORD,
        "project_dirs": [str(project_dir)],
        "profile_id": profile_id,
    }
    user = _ok(admin.post("/auth/register/", json=body), f"register {email}")
    _ok(
        admin.patch(f"/auth/users/{user['id']}/", json={"is_verified": True, **fields}),
        f"verify {email}",
    )


def make_cast(server_url: str, run_dir: Path) -> Cast:
    """The scientist (with one project and dataset of theirs), a colleague and a guest."""
    with httpx.Client(base_url=server_url, timeout=30) as admin:
        _login(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
        _register(admin, SCIENTIST_EMAIL, run_dir / "scientist-data")
        _register(admin, COLLEAGUE_EMAIL, run_dir / "colleague-data")
        _register(admin, GUEST_EMAIL, run_dir / "guest-data", is_guest=True)
    with httpx.Client(base_url=server_url, timeout=30) as scientist:
        _login(scientist, SCIENTIST_EMAIL, USER_PASSWORD)
        project = _ok(
            scientist.post("/api/v2/project/", json={"name": API_PROJECT}), "make a project"
        )
        dataset = _ok(
            scientist.post(f"/api/v2/project/{project['id']}/dataset/", json={"name": API_DATASET}),
            "make a dataset",
        )
    return Cast(
        Scientist(SCIENTIST_EMAIL, USER_PASSWORD, project["id"], dataset["id"]),
        COLLEAGUE_EMAIL,
        GUEST_EMAIL,
        USER_PASSWORD,
    )


@dataclass
class FractalWeb:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def build_fractal_web(source: Path, log_path: Path) -> None:
    """`npm ci` and `npm run build` in the fractal-web source folder, unless built already.

    engine-strict is lifted because fractal-web 1.29.x pins a lint tool (lint-staged 17)
    that wants Node 22; the build itself runs on Node 20.19 or newer.
    """
    if (source / "build" / "index.js").is_file():
        return
    env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
    with log_path.open("ab") as log:
        for command in (
            ["npm", "ci", "--engine-strict=false", "--no-audit", "--no-fund"],
            ["npm", "run", "build"],
        ):
            subprocess.run(command, cwd=source, env=env, stdout=log, stderr=log, check=True)


def start_fractal_web(source: Path, server_url: str, run_dir: Path) -> FractalWeb:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FRACTAL_SERVER_HOST": server_url,
        "FRACTAL_RUNNER_BACKEND": "local",
        "ORIGIN": url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "AUTH_COOKIE_SECURE": "false",
        "LOG_LEVEL_CONSOLE": "info",
        "PUBLIC_UPDATE_JOBS_INTERVAL": "1000",
    }
    log_path = run_dir / "fractal-web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["node", "build/"], cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    web = FractalWeb(url, process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fractal-web exited early:\n{web.log()}")
        try:
            httpx.get(f"{url}/alive", timeout=1)
            return web
        except httpx.HTTPError:
            time.sleep(0.3)
    web.stop()
    raise RuntimeError(f"fractal-web did not answer within 60 s:\n{web.log()}")
