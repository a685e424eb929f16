"""Every command of the real `fractal` client (fractal-client 2.24.1) against one live server.

One server (with its embedded runner) per database serves the whole module; each test makes
its own projects, so the tests do not depend on each other's order. Most calls use a token
file, which saves a login per call; the user/password mode is exercised by the second user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

import fractal_like

from ..conftest import PG_URL_VAR, REQUIRE_PG_VAR, _truncate_all
from ..support.helpers import ADMIN_EMAIL, ADMIN_PASSWORD
from ..support.live_server import FRACTAL_BIN, LiveServer, give_admin_a_profile, start_server
from ..support.runner_support import PKG_ROOT

pytestmark = pytest.mark.client

TOKEN_LIFETIME = 900  # FRACTAL_LIKE_JWT_EXPIRE_SECONDS of the module's server
JWT_AUDIENCE = ["fastapi-users:auth"]
PACKAGE_DIR = Path(fractal_like.__file__).parent


class Fractal:
    """The fractal CLI as one user runs it: a token file, or user and password on each call."""

    def __init__(
        self,
        server: LiveServer,
        home: Path,
        *,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "FRACTAL_SERVER": server.url,
            "FRACTAL_CACHE_PATH": str(home / "cache"),
        }
        if user is not None and password is not None:
            self.env |= {"FRACTAL_USER": user, "FRACTAL_PASSWORD": password}

    @property
    def token_file(self) -> Path:
        """The client's default token path, used when no user/password is set."""
        return self.home / "cache" / "token.txt"

    def run(
        self,
        *args: str,
        batch: bool = False,
        ok: bool = True,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command = [FRACTAL_BIN, *(["--batch"] if batch else []), *args]
        result = subprocess.run(
            command,
            env={**self.env, **(env or {})},
            cwd=self.home,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok:
            assert result.returncode == 0, (
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def fail(self, *args: str, **kwargs: Any) -> str:
        """Run a command that must fail with exit code 1; its stdout and stderr together."""
        result = self.run(*args, ok=False, **kwargs)
        assert result.returncode == 1, f"{args} gave {result.returncode}:\n{result.stdout}"
        return result.stdout + result.stderr

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)

    def batch(self, *args: str) -> str:
        return self.run(*args, batch=True).stdout.strip()


@dataclass
class Live:
    """The module's server, the admin's client and the folders tests may use."""

    server: LiveServer
    admin: Fractal
    root: Path
    secret: str
    admin_id: int
    _http: httpx.Client

    def api(self, method: str, url: str, **kwargs: Any) -> Any:
        """A request as the admin, straight to the API: to check what a command did."""
        response = self._http.request(method, url, **kwargs)
        assert response.status_code < 300, f"{method} {url}: {response.text}"
        return response.json() if response.content else None

    def scene(self, name: str, steps: list[dict[str, Any]]) -> tuple[str, str, str]:
        """A project, an empty dataset and a workflow of `steps`, made through the API for
        tests whose subject is another command; their ids as the CLI takes them."""
        project = self.api("POST", "/api/v2/project/", json={"name": name})["id"]
        base = f"/api/v2/project/{project}"
        dataset = self.api("POST", f"{base}/dataset/", json={"name": "plate"})["id"]
        workflow = self.api("POST", f"{base}/workflow/", json={"name": name})["id"]
        self.api("POST", f"{base}/workflow/{workflow}/wftask/", json=steps)
        return str(project), str(dataset), str(workflow)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, name: str, data: object) -> str:
        path = self.root / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
        return str(path)


def _module_db_url(backend: str, root: Path, sqlite_template: Path, pg_database: str | None) -> str:
    if backend == "sqlite":
        path = root / "fractal-like.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    if pg_database is None:
        if os.environ.get(REQUIRE_PG_VAR) == "1":
            pytest.fail(f"{REQUIRE_PG_VAR}=1 but {PG_URL_VAR} is not set")
        pytest.skip(f"PostgreSQL tests need {PG_URL_VAR}")
    _truncate_all(pg_database)
    return pg_database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    pg_database: str | None,
) -> Iterator[Live]:
    root = tmp_path_factory.mktemp(f"client-{request.param}")
    db_url = _module_db_url(request.param, root, sqlite_template, pg_database)
    server = start_server(
        db_url,
        root,
        runner=True,
        FRACTAL_LIKE_JWT_EXPIRE_SECONDS=str(TOKEN_LIFETIME),
        FRACTAL_LIKE_RUNNER_POLL_SECONDS="0.2",
    )
    http = httpx.Client(base_url=server.url, timeout=10)
    try:
        me = give_admin_a_profile(server, root)
        token = http.post(
            "/auth/token/login/", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        admin = Fractal(server, root / "admin")
        admin.token_file.parent.mkdir(parents=True)
        admin.token_file.write_text(token)  # the client's default path: no login per call
        yield Live(server, admin, root, server.env["FRACTAL_LIKE_JWT_SECRET"], me["id"], http)
    finally:
        http.close()
        server.stop()


@pytest.fixture(scope="module")
def pkg_tasks(live: Live) -> dict[str, str]:
    """tests/support/tasks_pkg registered by `task collect-custom` (private): task ids by name."""
    manifest = str(PKG_ROOT / "__FRACTAL_MANIFEST__.json")
    common = ["fl-test-tasks", sys.executable, manifest, "--version", "0.1.0"]
    ids = live.admin.batch(
        "task", "collect-custom", *common, "--package-root", str(PKG_ROOT), "--private"
    ).split()
    tasks = {task["id"]: task for task in live.api("GET", "/api/v2/task/")}
    by_name = {tasks[int(task_id)]["name"]: task_id for task_id in ids}
    assert len(by_name) == len(ids) >= 10
    return by_name


def _wait_for_job(live: Live, project_id: str, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = live.api("GET", f"/api/v2/project/{project_id}/job/{job_id}/")
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end within {timeout} s: {job}")


# --- version and tokens ---------------------------------------------------------------------


def test_version(live: Live) -> None:
    out = live.admin.run("version").stdout
    server_version = live.api("GET", "/api/alive/")["version"]
    assert "Fractal client\n  version: 2.24" in out
    assert f"url: {live.server.url}  version: {server_version}" in out


def _forge_token(live: Live, user_id: int, expires_in: float) -> str:
    """A token like the server's own (same secret and claims), expiring when we choose."""
    claims = {"sub": str(user_id), "aud": JWT_AUDIENCE, "exp": int(time.time() + expires_in)}
    # The admin's password fingerprint, as a token the server issued carries it.
    issued = jwt.decode(_login(live), options={"verify_signature": False})
    assert issued["sub"] == str(user_id)
    claims["pwd"] = issued["pwd"]
    return jwt.encode(claims, live.secret, algorithm="HS256")


def _login(live: Live) -> str:
    """A token as the server issues it (what a user copies from the web client)."""
    response = httpx.post(
        f"{live.server.url}/auth/token/login/",
        data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_token_lifetime_comes_from_configuration(live: Live) -> None:
    claims = jwt.decode(_login(live), options={"verify_signature": False})
    assert abs(claims["exp"] - time.time() - TOKEN_LIFETIME) < 30


def test_token_file_expired_token_and_fresh_login(live: Live) -> None:
    user = Fractal(live.server, live.root / "token-user")
    # `auth set-token` writes a pasted token to the default path; `check-token` asks the server.
    token = _login(live)
    assert "Token written to" in user.run("auth", "set-token", stdin=token + "\n").stdout
    assert user.token_file.read_text() == token
    checked = user.run("auth", "check-token").stdout
    assert f"Valid token for {ADMIN_EMAIL} found at {user.token_file}." in checked
    assert user.batch("user", "whoami") == str(live.admin_id)

    # A token file elsewhere, by --token-path or by FRACTAL_TOKEN (the variable the 2.24
    # client reads, although its help says FRACTAL_TOKEN_PATH).
    other = live.root / "token-user" / "elsewhere.txt"
    other.write_text(token)
    assert user.batch("--token-path", str(other), "user", "whoami") == str(live.admin_id)
    whoami = user.run("user", "whoami", batch=True, env={"FRACTAL_TOKEN": str(other)})
    assert whoami.stdout.strip() == str(live.admin_id)

    # An expired token: the client refuses it itself before any request...
    expired = _forge_token(live, live.admin_id, -60)
    other.write_text(expired)
    out = user.fail("--token-path", str(other), "user", "whoami", stdin=expired + "\n")
    assert f"The token at {other} is invalid or expired/expiring." in out
    assert "The token provided is invalid or expired/expiring. Exit." in out
    # ...and the server refuses it too, which `auth check-token` shows.
    out = user.fail("--token-path", str(other), "auth", "check-token")
    assert "Token verification failed." in out and "401 Unauthorized" in out
    response = httpx.get(
        f"{live.server.url}/auth/current-user/", headers={"Authorization": f"Bearer {expired}"}
    )
    assert response.status_code == 401 and response.json() == {"detail": "Unauthorized"}

    # A fresh login works at once: with user and password on the call, or as a new token file.
    login = ["-u", ADMIN_EMAIL, "-p", ADMIN_PASSWORD]
    assert user.batch(*login, "user", "whoami") == str(live.admin_id)
    out = user.fail("-u", ADMIN_EMAIL, "-p", "wrong-password", "user", "whoami")
    assert "Status code: 400" in out and "LOGIN_BAD_CREDENTIALS" in out
    user.run("--token-path", str(other), "auth", "set-token", stdin=_login(live) + "\n")
    assert user.batch("--token-path", str(other), "user", "whoami") == str(live.admin_id)

    # `auth clear-token` removes the default file.
    assert f"Removed {user.token_file}." in user.run("auth", "clear-token").stdout
    assert not user.token_file.exists()


# --- users, groups, resources, profiles -----------------------------------------------------


def test_users_groups_resources_and_profiles(live: Live) -> None:
    admin = live.admin
    me = admin.json("user", "whoami", "--viewer-paths")
    assert me["email"] == ADMIN_EMAIL and me["is_superuser"] is True
    assert me["viewer_paths"] == me["project_dirs"] == [str(live.root / "admin-project-dir")]
    assert admin.batch("user", "whoami") == str(me["id"])

    # A resource and a profile from files, as an admin prepares them.
    local = {
        "type": "local",
        "jobs_local_dir": str(live.folder("jobs-2")),
        "tasks_local_dir": str(live.folder("tasks-2")),
    }
    resource = admin.json(
        "resource", "new", live.write("resource2.json", {**local, "name": "second local"})
    )
    assert resource["name"] == "second local" and resource["type"] == "local"
    resource_id = admin.batch(
        "resource", "new", live.write("resource3.json", {**local, "name": "third local"})
    )
    assert int(resource_id) == resource["id"] + 1
    profile_file = live.write("profile.json", {"name": "second profile"})
    profile = admin.json("profile", "new", str(resource["id"]), profile_file)
    assert profile["resource_id"] == resource["id"] and profile["name"] == "second profile"
    profile_file = live.write("profile3.json", {"name": "third profile"})
    profile_id = admin.batch("profile", "new", resource_id, profile_file)
    assert live.api("GET", f"/admin/v2/profile/{profile_id}/")["resource_id"] == int(resource_id)

    # Register a user (the client PATCHes it verified right after), then edit it.
    data_dir = str(live.folder("alice-data"))
    alice = admin.json("user", "register", "alice@example.org", "alice-pw-1", data_dir)
    assert alice["email"] == "alice@example.org" and alice["is_verified"] is True
    assert alice["is_superuser"] is False and alice["project_dirs"] == [data_dir]
    bob_id = admin.batch("user", "register", "bob@example.org", "bob-pw-1", data_dir, "--superuser")
    assert live.api("GET", f"/auth/users/{bob_id}/")["is_superuser"] is True
    emails = [item["email"] for item in admin.json("user", "list")]
    assert {ADMIN_EMAIL, "alice@example.org", "bob@example.org"} <= set(emails)
    assert admin.json("user", "show", str(alice["id"]))["email"] == "alice@example.org"

    uid = str(alice["id"])
    extra_dir = str(live.folder("alice-extra"))
    edited = admin.json(
        "user",
        "edit",
        uid,
        "--new-email",
        "alice2@example.org",
        "--make-verified",
        "--new-password",
        "alice-pw-2",
        "--add-project-dir",
        extra_dir,
        "--new-profile-id",
        str(profile["id"]),
        "--make-superuser",
    )
    assert edited["email"] == "alice2@example.org" and edited["is_verified"] is True
    assert edited["project_dirs"] == [data_dir, extra_dir]
    assert edited["profile_id"] == profile["id"] and edited["is_superuser"] is True
    # The 2.24 client only handles --remove-project-dir together with --add-project-dir.
    third_dir = str(live.folder("alice-third"))
    edited = admin.json(
        "user",
        "edit",
        uid,
        "--add-project-dir",
        third_dir,
        "--remove-project-dir",
        data_dir,
        "--remove-superuser",
    )
    assert edited["project_dirs"] == [extra_dir, third_dir] and edited["is_superuser"] is False

    # Alice logs in with her new email and password on every call (no token file).
    alice_client = Fractal(
        live.server, live.root / "alice", user="alice2@example.org", password="alice-pw-2"
    )
    assert alice_client.batch("user", "whoami") == uid
    # A non-superuser is refused the admin commands.
    assert "Server returned 403" in alice_client.fail("user", "list")

    # Groups.
    group = admin.json("group", "new", "microscopy")
    assert group["name"] == "microscopy" and group["user_ids"] == []
    second_id = admin.batch("group", "new", "analysis")
    all_ids = admin.batch("group", "list").split()
    assert str(group["id"]) in all_ids and second_id in all_ids
    listed = admin.json("group", "list")
    assert all(item["user_ids"] is None for item in listed)  # present, as in Fractal
    with_users = {item["name"]: item for item in admin.json("group", "list", "--user-ids")}
    assert int(uid) in with_users["All"]["user_ids"]

    gid = str(group["id"])
    added = admin.json("group", "add-user", gid, uid)
    assert added["user_ids"] == [int(uid)]
    assert admin.json("group", "get", gid)["user_ids"] == [int(uid)]
    removed = admin.json("group", "remove-user", gid, uid)
    assert removed["user_ids"] == []

    # set-groups replaces the memberships (the default group always stays).
    user = admin.json("user", "set-groups", uid, gid, second_id)
    names = sorted(name for _id, name in user["group_ids_names"])
    assert names == ["All", "analysis", "microscopy"]
    user = admin.json("user", "set-groups", uid, second_id)
    assert sorted(name for _id, name in user["group_ids_names"]) == ["All", "analysis"]
    assert live.api("GET", f"/auth/group/{gid}/")["user_ids"] == []


# --- projects and datasets ------------------------------------------------------------------


def test_projects_and_datasets(live: Live) -> None:
    admin = live.admin
    project = admin.json("project", "new", "proj A")
    assert project["name"] == "proj A" and set(project) >= {"id", "timestamp_created"}
    pid = str(project["id"])
    other_pid = admin.batch("project", "new", "proj B")
    assert int(other_pid) == project["id"] + 1
    names = {item["id"]: item["name"] for item in admin.json("project", "list")}
    assert names[project["id"]] == "proj A" and names[int(other_pid)] == "proj B"
    assert admin.json("project", "show", pid)["name"] == "proj A"
    assert admin.json("project", "edit", pid, "--new-name", "proj A2")["name"] == "proj A2"
    assert live.api("GET", f"/api/v2/project/{pid}/")["name"] == "proj A2"

    did = admin.batch("project", "add-dataset", pid, "plate one")
    dataset = live.api("GET", f"/api/v2/project/{pid}/dataset/{did}/")
    assert dataset["zarr_dir"].endswith(f"/fractal/{pid}_proj_a2/{did}_plate_one")
    project_dir = str(live.root / "admin-project-dir")
    custom = admin.json(
        "project",
        "add-dataset",
        pid,
        "custom",
        "--project-dir",
        project_dir,
        "--zarr-subfolder",
        "plates/2",
    )
    assert custom["zarr_dir"] == f"{project_dir}/plates/2" and custom["project_id"] == int(pid)

    shown = admin.json("dataset", "show", pid, did)
    assert shown["name"] == "plate one" and shown["project"]["name"] == "proj A2"
    assert admin.json("dataset", "edit", pid, did, "--new-name", "plate 1")["name"] == "plate 1"
    assert live.api("GET", f"/api/v2/project/{pid}/dataset/{did}/")["name"] == "plate 1"
    admin.run("dataset", "delete", pid, did)
    datasets = live.api("GET", f"/api/v2/project/{pid}/dataset/")
    assert [item["name"] for item in datasets] == ["custom"]
    assert "not found" in admin.run("dataset", "show", pid, did).stdout  # printed, rc 0

    admin.run("project", "delete", other_pid)
    assert int(other_pid) not in {item["id"] for item in live.api("GET", "/api/v2/project/")}


# --- tasks ----------------------------------------------------------------------------------


def test_tasks(live: Live, pkg_tasks: dict[str, str]) -> None:
    admin = live.admin
    meta = live.write("meta.json", {"cpus_per_task": 2})
    schema = {"title": "T", "type": "object", "properties": {"x": {"type": "integer"}}}
    task = admin.json(
        "task",
        "new",
        "cli-task",
        "--version",
        "1.0",
        "--task-type",
        "parallel",
        "--command-parallel",
        "/bin/true",
        "--meta-parallel",
        meta,
        "--args-schema-parallel",
        live.write("schema.json", schema),
        "--args-schema-version",
        "pydantic_v2",
    )
    assert task["type"] == "parallel" and task["meta_parallel"] == {"cpus_per_task": 2}
    assert task["args_schema_parallel"] == schema and task["args_schema_version"] == "pydantic_v2"
    newer_id = admin.batch(
        "task",
        "new",
        "cli-task",
        "--version",
        "2.0",
        "--command-non-parallel",
        "/bin/true",
        "--private",
    )
    assert live.api("GET", f"/api/v2/task/{newer_id}/")["type"] == "non_parallel"

    listed = admin.json("task", "list")
    keys = [(item["name"], item["version"]) for item in listed]
    assert ("cli-task", "1.0") in keys and ("cli-task", "2.0") in keys
    assert keys == sorted(keys)
    cached = json.loads((admin.home / "cache" / "tasks").read_text())
    assert [item["id"] for item in cached] == [item["id"] for item in listed]

    edited = admin.json(
        "task",
        "edit",
        "--id",
        str(task["id"]),
        "--command-parallel",
        "/bin/echo",
        "--input-types",
        live.write("in.json", {"is_3D": True}),
    )
    assert edited["command_parallel"] == "/bin/echo" and edited["input_types"] == {"is_3D": True}
    # By name: the latest version unless --version says otherwise (from the client's cache).
    edited = admin.json("task", "edit", "--name", "cli-task", "--command-non-parallel", "/bin/ls")
    assert edited["id"] == int(newer_id) and edited["command_non_parallel"] == "/bin/ls"
    edited = admin.json(
        "task",
        "edit",
        "--name",
        "cli-task",
        "--version",
        "1.0",
        "--output-types",
        live.write("out.json", {"is_3D": False}),
    )
    assert edited["id"] == task["id"] and edited["output_types"] == {"is_3D": False}

    ids = [str(task["id"]), pkg_tasks["sleep"]]
    assert admin.run("task", "make-core", *ids).stdout.strip() == "Marked 2 as core."
    assert all(live.api("GET", f"/api/v2/task/{tid}/")["is_core"] for tid in ids)
    assert admin.run("task", "make-not-core", *ids).stdout.strip() == "Marked 2 as not core."
    assert not any(live.api("GET", f"/api/v2/task/{tid}/")["is_core"] for tid in ids)


def test_collect_custom_by_package_name(live: Live) -> None:
    """--package-name: the server asks the interpreter where the package lives."""
    manifest = json.loads((PKG_ROOT / "__FRACTAL_MANIFEST__.json").read_text())
    # Executables are relative to the package's folder: here fractal_like/ holds the demo.
    manifest["task_list"] = [
        {**task, "executable_non_parallel": f"examples/demo_tasks/{task['name']}.py"}
        for task in json.loads(
            (PACKAGE_DIR / "examples" / "demo_tasks" / "__FRACTAL_MANIFEST__.json").read_text()
        )["task_list"][:1]
    ]
    manifest_file = live.write("by-name-manifest.json", manifest)
    tasks = live.admin.json(
        "task",
        "collect-custom",
        "demo-by-name",
        sys.executable,
        manifest_file,
        "--version",
        "0.2.0",
        "--package-name",
        "fractal_like",
    )
    assert tasks[0]["name"] == "create_demo_images"
    command = f"{sys.executable} {PACKAGE_DIR}/examples/demo_tasks/create_demo_images.py"
    assert [task["command_non_parallel"] for task in tasks] == [command]


# --- workflows and templates ----------------------------------------------------------------


def test_workflows(live: Live, pkg_tasks: dict[str, str]) -> None:
    admin = live.admin
    pid = admin.batch("project", "new", "wf project")
    workflow = admin.json("workflow", "new", "wf one", pid)
    assert workflow["name"] == "wf one" and workflow["task_list"] == []
    wid = str(workflow["id"])
    other_wid = admin.batch("workflow", "new", "wf two", pid)
    assert admin.batch("workflow", "list", pid) == f"{wid} {other_wid}"
    assert [item["name"] for item in admin.json("workflow", "list", pid)] == ["wf one", "wf two"]

    args = live.write("create.json", {"num_images": 2})
    first = admin.batch(
        "workflow",
        "add-task",
        pid,
        wid,
        "--task-id",
        pkg_tasks["create_images"],
        "--args-non-parallel",
        args,
        "--meta-non-parallel",
        live.write("meta_np.json", {"mem": 1000}),
    )
    # By name, through the client's task cache (filled here by its first lookup).
    added = admin.json(
        "workflow",
        "add-task",
        pid,
        wid,
        "--task-name",
        "measure_intensity",
        "--args-parallel",
        live.write("measure.json", {"label": "x"}),
        "--meta-parallel",
        live.write("meta_p.json", {"cpus_per_task": 1}),
        "--type-filters",
        live.write("filters.json", {"is_3D": True}),
    )
    assert isinstance(added, list) and len(added) == 1
    second = added[0]
    assert second["task_id"] == int(pkg_tasks["measure_intensity"])
    assert second["type_filters"] == {"is_3D": True} and second["order"] == 1
    third = admin.batch(
        "workflow", "add-task", pid, wid, "--task-name", "sleep", "--task-version", "0.1.0"
    )

    shown = admin.json("workflow", "show", pid, wid)
    assert [item["id"] for item in shown["task_list"]] == [int(first), second["id"], int(third)]
    assert shown["task_list"][0]["args_non_parallel"] == {"num_images": 2}
    assert shown["task_list"][0]["meta_non_parallel"] == {"mem": 1000}
    assert shown["task_list"][1]["meta_parallel"] == {"cpus_per_task": 1}

    patched = admin.json(
        "workflow",
        "edit-task",
        pid,
        wid,
        str(second["id"]),
        "--args-parallel",
        live.write("measure2.json", {"label": "y"}),
        "--type-filters",
        live.write("filters2.json", {}),
    )
    assert patched["args_parallel"] == {"label": "y"} and patched["type_filters"] == {}
    admin.run("workflow", "rm-task", pid, wid, third)
    after = live.api("GET", f"/api/v2/project/{pid}/workflow/{wid}/")
    assert [item["id"] for item in after["task_list"]] == [int(first), second["id"]]
    assert admin.json("workflow", "edit", pid, wid, "--new-name", "wf 1")["name"] == "wf 1"

    exported = live.root / "files" / "wf-export.json"
    out = admin.run("workflow", "export", pid, wid, "--json-file", str(exported)).stdout
    assert f"Workflow {wid} exported at {exported}" in out
    data = json.loads(exported.read_text())
    assert data["name"] == "wf 1"
    assert [item["task"]["name"] for item in data["task_list"]] == [
        "create_images",
        "measure_intensity",
    ]

    imported = admin.json(
        "workflow",
        "import",
        "--project-id",
        pid,
        "--json-file",
        str(exported),
        "--workflow-name",
        "wf imported",
    )
    assert imported["name"] == "wf imported" and imported["id"] > int(other_wid)
    assert imported["task_list"][1]["args_parallel"] == {"label": "y"}
    ids = admin.batch(
        "workflow",
        "import",
        "--project-id",
        pid,
        "--json-file",
        str(exported),
        "--workflow-name",
        "wf 1 again",
    ).split()
    again = live.api("GET", f"/api/v2/project/{pid}/workflow/{ids[0]}/")
    assert again["name"] == "wf 1 again"
    assert [str(item["id"]) for item in again["task_list"]] == ids[1:]

    # A task the server does not have: the client's own [HAS_ERROR_DATA] message.
    data["name"] = "missing version"
    data["task_list"][1]["task"]["version"] = "9.9"
    out = admin.fail(
        "workflow", "import", "--project-id", pid, "--json-file", live.write("bad.json", data)
    )
    assert (
        "Task 'measure_intensity' (package 'fl-test-tasks', version '9.9') not available. "
        "Available versions: ['0.1.0']." in out
    )

    admin.run("workflow", "delete", pid, other_wid)
    remaining = [item["name"] for item in live.api("GET", f"/api/v2/project/{pid}/workflow/")]
    assert remaining == ["wf 1", "wf imported", "wf 1 again"]


def test_templates(live: Live, pkg_tasks: dict[str, str]) -> None:
    admin = live.admin
    _, _, wid = live.scene("to share", [{"task_id": int(pkg_tasks["create_images"])}])
    pid = str(live.api("POST", "/api/v2/project/", json={"name": "template target"})["id"])
    group_id = str(live.api("POST", "/auth/group/", json={"name": "template readers"})["id"])
    live.api("POST", f"/auth/group/{group_id}/add-user/{live.admin_id}/")

    template = admin.json("template", "new", "--workflow-id", wid, "--name", "T", "--version", "1")
    assert template["name"] == "T" and template["version"] == 1
    assert template["user_email"] == ADMIN_EMAIL and template["user_group_id"] is None
    assert [item["task"]["name"] for item in template["data"]["task_list"]] == ["create_images"]
    tid = str(template["id"])
    shared_id = admin.batch(
        "template",
        "new",
        "--workflow-id",
        wid,
        "--name",
        "T",
        "--version",
        "2",
        "--user-group-id",
        group_id,
    )
    assert live.api("GET", f"/api/v2/workflow-template/{shared_id}/")["user_group_id"] == int(
        group_id
    )
    assert admin.json("template", "show", tid)["id"] == int(tid)

    exported = live.root / "files" / "template.json"
    out = admin.run("template", "export", tid, str(exported)).stdout
    assert f"Template {tid} exported at {exported}." in out
    data = json.loads(exported.read_text())
    assert data["name"] == "T" and data["version"] == 1
    assert data["data"]["task_list"][0]["task"]["name"] == "create_images"
    from_file = admin.batch(
        "template", "new", "--json-file", str(exported), "--name", "T-copy", "--version", "3"
    )
    copy = live.api("GET", f"/api/v2/workflow-template/{from_file}/")
    assert (copy["name"], copy["version"]) == ("T-copy", 3)
    assert [item["task"] for item in copy["data"]["task_list"]] == [
        item["task"] for item in template["data"]["task_list"]
    ]

    workflow = admin.json("workflow", "import-from-template", pid, tid, "--name", "from T")
    assert workflow["name"] == "from T" and workflow["template_id"] == int(tid)
    assert [item["task"]["name"] for item in workflow["task_list"]] == ["create_images"]
    ids = admin.batch("workflow", "import-from-template", pid, from_file).split()
    assert live.api("GET", f"/api/v2/project/{pid}/workflow/{ids[0]}/")["name"] == "to share"
    assert len(ids) == 2

    # A template whose task version is gone: the same [HAS_ERROR_DATA] message as an import.
    data["data"]["task_list"][0]["task"]["version"] = "0.0.9"
    broken = live.api("POST", "/api/v2/workflow-template/import/", json={**data, "version": 4})
    out = admin.fail("workflow", "import-from-template", pid, str(broken["id"]), "--name", "x")
    assert (
        "Task 'create_images' (package 'fl-test-tasks', version '0.0.9') not available. "
        "Available versions: ['0.1.0']." in out
    )

    admin.run("template", "delete", from_file)
    groups = live.api("GET", "/api/v2/workflow-template/")["items"]
    left = {str(member["template_id"]) for group in groups for member in group["templates"]}
    assert from_file not in left and tid in left


# --- jobs -----------------------------------------------------------------------------------


def test_jobs_submit_show_list_and_logs(live: Live, pkg_tasks: dict[str, str]) -> None:
    admin = live.admin
    pid, did, wid = live.scene(
        "job workflow",
        [
            {"task_id": int(pkg_tasks["create_images"]), "args_non_parallel": {"num_images": 3}},
            {"task_id": int(pkg_tasks["measure_intensity"])},
            {"task_id": int(pkg_tasks["project_to_2d"])},
        ],
    )

    # The first two tasks only, a worker-init line, and filters kept on the job.
    job = admin.json(
        "job",
        "submit",
        pid,
        wid,
        did,
        "--start",
        "0",
        "--end",
        "1",
        "--worker-init",
        "export A=1",
        "--attribute-filters-json",
        live.write("attr.json", {"well": ["A01", "A02"]}),
        "--type-filters-json",
        live.write("types.json", {"is_3D": True}),
    )
    assert job["status"] == "submitted" and job["worker_init"] == "export A=1"
    assert (job["first_task_index"], job["last_task_index"]) == (0, 1)
    assert job["attribute_filters"] == {"well": ["A01", "A02"]}
    assert job["type_filters"] == {"is_3D": True}
    jid = str(job["id"])
    done = _wait_for_job(live, pid, jid)
    assert done["status"] == "done", done["log"]
    assert admin.batch("job", "show", pid, jid) == "done"
    shown = admin.json("job", "show", pid, jid)
    assert shown["workflow_dump"]["name"] == "job workflow" and "Job done." in shown["log"]

    output = live.root / "logs"
    out = admin.run("job", "download-logs", pid, jid, "--output", str(output)).stdout
    assert "Logs downloaded to" in out
    assert "Job done." in (output / "workflow.log").read_text()
    folders = sorted(path.name for path in output.iterdir() if path.is_dir())
    assert folders == ["0_create_images", "1_measure_intensity"]
    # measure_intensity ran once per image that passed the attribute filter (2 of 3).
    unit_args = sorted((output / "1_measure_intensity").glob("*-args.json"))
    assert len(unit_args) == 2
    assert all(
        path.with_name(path.name[: -len("args.json")] + "log.txt").exists() for path in unit_args
    )

    # The last task alone, from the images the first job made.
    second = admin.batch("job", "submit", pid, wid, did, "--start", "2")
    assert _wait_for_job(live, pid, second)["status"] == "done"
    assert admin.batch("job", "list", pid) == f"{jid} {second}"
    listed = admin.json("job", "list", pid)
    assert [(item["id"], item["last_task_index"]) for item in listed] == [
        (int(jid), 1),
        (int(second), 2),
    ]
    out = admin.fail("job", "submit", pid, wid, did, "--start", "2", "--end", "5")
    assert "Server returned 422" in out and "do not fit" in out


def test_job_stop_ends_a_running_job(live: Live, pkg_tasks: dict[str, str]) -> None:
    admin = live.admin
    pid, did, wid = live.scene(
        "slow",
        [
            {"task_id": int(pkg_tasks["create_images"]), "args_non_parallel": {"num_images": 1}},
            {"task_id": int(pkg_tasks["sleep"]), "args_parallel": {"seconds": 60}},
        ],
    )
    jid = admin.batch("job", "submit", pid, wid, did)
    dataset = live.api("GET", f"/api/v2/project/{pid}/dataset/{did}/")
    pid_file = Path(dataset["zarr_dir"]) / "plate.zarr" / "A" / "1" / "0" / "sleep.pid"
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_file.exists(), live.api("GET", f"/api/v2/project/{pid}/job/{jid}/")
    started = time.monotonic()

    out = admin.run("job", "stop", pid, jid).stdout
    assert "Correctly called the job-stopping endpoint" in out
    job = _wait_for_job(live, pid, jid, timeout=30)
    assert time.monotonic() - started < 20  # not the 60 s of the task
    assert job["status"] == "failed" and "stopped by user" in job["log"]
    sleeper = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # the task's process is gone, not left behind
        os.kill(sleeper, 0)
    out = admin.fail("job", "stop", pid, jid)
    assert "Server returned 422" in out and "has already ended" in out
