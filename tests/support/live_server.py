"""A real `fractal-like serve` process on a free port, for tests that drive real clients."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .helpers import ADMIN_EMAIL, ADMIN_PASSWORD

FRACTAL_BIN = str(Path(sys.executable).parent / "fractal")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    db_url: str,
    tmp_path: Path,
    timeout: float = 60.0,
    runner: bool = False,
    **extra_env: str | None,
) -> LiveServer:
    """`extra_env` adds or overrides variables; None leaves one unset."""
    port = free_port()
    data_dir = tmp_path / "server-data"
    env = {
        **os.environ,
        "FRACTAL_LIKE_DB_URL": db_url,
        "FRACTAL_LIKE_DATA_DIR": str(data_dir),
        "FRACTAL_LIKE_ADMIN_EMAIL": ADMIN_EMAIL,
        "FRACTAL_LIKE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "FRACTAL_LIKE_JWT_SECRET": "live-server-secret-9e41b7c02d6a58f3e1c94b0a7d36f82e5c1a",
        "FRACTAL_LIKE_BOOTSTRAP_LOCAL_RESOURCE": "false",
        "FRACTAL_LIKE_EMBEDDED_RUNNER": "true" if runner else "false",
        **extra_env,
    }
    env = {name: value for name, value in env.items() if value is not None}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fractal_like.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/api/alive/", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not answer within {timeout} s:\n{server.log()}")


def give_admin_a_profile(server: LiveServer, tmp_path: Path) -> dict:
    """Make the admin a usable /api/v2/ user: a local resource, a profile, a project dir."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        token = client.post(
            "/auth/token/login/", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        resource = client.post(
            "/admin/v2/resource/",
            json={
                "name": "local",
                "type": "local",
                "jobs_local_dir": str(tmp_path / "jobs"),
                "tasks_local_dir": str(tmp_path / "tasks"),
            },
        ).json()
        profile = client.post(
            f"/admin/v2/resource/{resource['id']}/profile/", json={"name": "local"}
        ).json()
        me = client.get("/auth/current-user/").json()
        data_dir = tmp_path / "admin-project-dir"
        data_dir.mkdir()
        response = client.patch(
            f"/auth/users/{me['id']}/",
            json={"profile_id": profile["id"], "project_dirs": [str(data_dir)]},
        )
        response.raise_for_status()
        return response.json()
