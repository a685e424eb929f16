"""Units never see the server's secrets: environment, files and process, on every backend.

A user's task (`dump_env`) dumps its environment and tries the JWT secret file, the SQLite
database and `/proc/<pid>/environ` of the runner and the server, as an attacker would.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fractal_like.config import Settings
from fractal_like.runner.accounts import as_account, server_user
from fractal_like.runner.node import sandbox
from fractal_like.runner.server_files import private_paths
from fractal_like.runner.slurm.commands import SlurmCommands
from fractal_like.runner.unit_env import pip_environment, unit_environment
from fractal_like.services.collection.place import run

from ..support.helpers import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    USER_PASSWORD,
    ApiClient,
    UserClient,
    expect,
    login,
)
from ..support.live_server import start_server
from ..support.runner_support import (
    PKG_ROOT,
    Scene,
    collect_body,
    images,
    new_scene,
    run_until_final,
)
from ..support.slurm_scene import CLUSTER_PYTHON, cleanup, slurm_scene
from ..support.slurm_support import (
    ALICE,
    ensure_unix_user,
    remove_shared_dir,
    shared_dir,
    user_owned_dir,
)

# What the server was given, as an operator would give it: none of it may reach a unit.
SERVER_SECRETS = {
    "FRACTAL_LIKE_ADMIN_PASSWORD": "admin-password-never-in-a-unit",
    "FRACTAL_LIKE_SOME_SETTING": "server-setting-never-in-a-unit",
    "DATABASE_URL": "postgresql://fl:db-password-never-in-a-unit@db/fl",
    "PGPASSWORD": "pg-password-never-in-a-unit",
}
JWT_CONTENT = "jwt-secret-never-in-a-unit"


def _report(zarr_url: str) -> dict[str, Any]:
    return json.loads((Path(zarr_url) / "dump_env.json").read_text())


def _assert_no_secret_in(report: dict[str, Any], secrets: list[str]) -> None:
    environ = report["environ"]
    assert not [name for name in environ if name.startswith("FRACTAL_LIKE_")], environ
    assert "DATABASE_URL" not in environ and "PGPASSWORD" not in environ, environ
    text = json.dumps(report["environ"])
    for secret in secrets:
        assert secret not in text


def _assert_denied(results: dict[str, str]) -> None:
    for what, result in results.items():
        assert result.startswith("denied"), f"{what}: {result}"


def _dump_env_job(scene: Scene, probe_paths: list[str], probe_pids: list[int]) -> int:
    return scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 2}}),
        ("dump_env", {"args_parallel": {"probe_paths": probe_paths, "probe_pids": probe_pids}}),
    )


# ------------------------------------------------------------------ the allow-list itself


def test_the_allow_list_keeps_what_programs_need_and_nothing_of_the_server() -> None:
    source = {
        "PATH": "/usr/bin",
        "HOME": "/home/server",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TMPDIR": "/scratch",
        "PYTHONPATH": "/server/code",
        "VIRTUAL_ENV": "/server/venv",
        "HTTPS_PROXY": "http://user:pw@proxy:3128",
        "PIP_INDEX_URL": "https://index.example.org/simple",
        **SERVER_SECRETS,
    }
    units = unit_environment(source, extra={"FL_X": "1", "FRACTAL_LIKE_DB_URL": "sqlite://"})
    assert units == {
        "PATH": "/usr/bin",
        "HOME": "/home/server",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TMPDIR": "/scratch",
        "FL_X": "1",  # what the resource or the task contract add
    }
    assert unit_environment({})["PATH"] == os.defpath  # a unit can always find programs
    root = pwd.getpwuid(0)
    as_root = unit_environment(source, account=root.pw_name)
    assert as_root["HOME"] == root.pw_dir and as_root["USER"] == root.pw_name


def test_pip_gets_the_network_and_pip_settings_but_not_the_server_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("PIP_INDEX_URL", "https://index.example.org/simple")
    monkeypatch.setenv("PYTHONPATH", "/server/code")
    env = pip_environment()
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["PIP_INDEX_URL"] == "https://index.example.org/simple"
    assert env["PYTHONNOUSERSITE"] == "1"
    assert not set(env) & {*SERVER_SECRETS, "PYTHONPATH"}


def test_commands_as_an_account_get_exactly_the_environment_given() -> None:
    argv = as_account(None, ["printenv"], {"PATH": "/usr/bin:/bin", "ONLY": "this"})
    assert argv[:2] == ["env", "-i"]
    argv = as_account("nobody", ["printenv"], {"PATH": "/usr/bin"})
    assert argv[:6] == ["sudo", "-n", "-u", "nobody", "env", "-i"]
    with pytest.raises(ValueError, match="not a valid Unix account name"):
        as_account("-u root", ["true"], {})


def test_private_paths_are_the_server_s_files_not_the_units_folders(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for folder in ("jobs", "tasks", "admin-data"):
        (data / folder).mkdir(parents=True)
    (data / "jwt-secret").write_text(JWT_CONTENT)
    (data / "server.log").write_text("log")
    settings = Settings(DATA_DIR=data, JWT_SECRET=secrets.token_hex(32))
    paths = private_paths(settings)
    database = str(data / "fractal-like.db")
    assert {database, database + "-wal", database + "-shm", database + "-journal"} <= set(paths)
    assert {str(data / "jwt-secret"), str(data / "server.log")} <= set(paths)
    assert not [path for path in paths if path.endswith(("jobs", "tasks", "admin-data"))]


# ------------------------------------------------------------------ the local backend


def test_a_local_unit_finds_nothing_of_the_server(
    api: ApiClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's environment holds secrets; its unit sees none, cannot read the JWT
    secret file, the SQLite database (when there is one) or the runner's environment."""
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    secret_file = settings.DATA_DIR / "jwt-secret"
    secret_file.write_text(JWT_CONTENT)
    probes = [str(secret_file)]
    if settings.database_url.startswith("sqlite"):
        database = settings.database_url.removeprefix("sqlite:///")
        probes += [database, database + "-wal"]
    scene = new_scene(api)
    job_id = _dump_env_job(scene, probes, [os.getpid()])
    assert run_until_final(settings, [job_id])[job_id] == "done", scene.job(job_id)["log"]
    for image in images(scene.user, scene.project["id"], scene.dataset["id"]):
        report = _report(image["zarr_url"])
        _assert_no_secret_in(report, [*SERVER_SECRETS.values(), JWT_CONTENT])
        if sandbox.landlock_abi() >= sandbox.MIN_ABI:
            _assert_denied(report["paths"])
        # The runner (this process) is undumpable: its environment is out of reach.
        assert report["proc_environ"][str(os.getpid())].startswith("denied")
        # What started the unit (its launcher, a warm parent) holds the allow-list only.
        for pid, seen in report["proc_environ"].items():
            if pid != str(os.getpid()) and not seen.startswith("denied"):
                assert "FRACTAL_LIKE_" not in seen and JWT_CONTENT not in seen, (pid, seen)
            if pid == str(os.getpid()):
                break
        assert report["uid"] == os.getuid()  # no username: the server's own account
        # The data folder lies under the system's temporary folder here, where a confined
        # unit could create nothing: it gets a temporary folder of the job's own.
        assert report["temp_file"] == "ok"


def test_a_plain_user_on_the_embedded_local_resource_cannot_become_admin(
    db_url: str, tmp_path: Path
) -> None:
    """Tried as an attacker would, against a real `serve` with its embedded runner and
    embedded local resource: the unit learns neither the admin password, the database URL
    nor the JWT secret (a file the server generated in its data folder)."""
    server = start_server(
        db_url,
        tmp_path,
        runner=True,
        FRACTAL_LIKE_BOOTSTRAP_LOCAL_RESOURCE="true",
        FRACTAL_LIKE_RUNNER_BACKEND="local",
        FRACTAL_LIKE_JWT_SECRET=None,  # generated and kept in the data folder
        DATABASE_URL=SERVER_SECRETS["DATABASE_URL"],
    )
    try:
        data_dir = Path(server.env["FRACTAL_LIKE_DATA_DIR"])
        secret_file = data_dir / "jwt-secret"
        jwt_secret = secret_file.read_text().strip()
        probes = [str(secret_file)]
        if db_url.startswith("sqlite"):
            database = db_url.removeprefix("sqlite:///")
            probes += [database, database + "-wal", database + "-shm"]
        with httpx.Client(base_url=server.url, timeout=30) as admin:
            admin.headers["Authorization"] = "Bearer " + _token(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
            profile_id = expect(admin.get("/auth/current-user/"), 200)["profile_id"]
            assert profile_id is not None, "serve gives the first admin the embedded profile"
            project_dir = tmp_path / "attacker-data"
            project_dir.mkdir()
            email = "attacker@example.org"
            body = {"email": email, "password": USER_PASSWORD, "profile_id": profile_id}
            expect(
                admin.post("/auth/register/", json={**body, "project_dirs": [str(project_dir)]}),
                201,
            )
        with httpx.Client(base_url=server.url, timeout=30) as user:
            user.headers["Authorization"] = "Bearer " + _token(user, email, USER_PASSWORD)
            zarr_urls = _run_dump_env_over_http(user, probes, [server.process.pid])
        for zarr_url in zarr_urls:
            report = _report(zarr_url)
            secrets = [ADMIN_PASSWORD, jwt_secret, SERVER_SECRETS["DATABASE_URL"], db_url]
            _assert_no_secret_in(report, secrets)
            _assert_denied(report["paths"])
            _assert_denied(
                {
                    f"/proc/{server.process.pid}/environ": report["proc_environ"][
                        str(server.process.pid)
                    ]
                }
            )
    finally:
        server.stop()


def _token(client: httpx.Client, email: str, password: str) -> str:
    response = client.post("/auth/token/login/", data={"username": email, "password": password})
    return expect(response, 200)["access_token"]


def _run_dump_env_over_http(
    user: httpx.Client, probe_paths: list[str], probe_pids: list[int]
) -> list[str]:
    """Collect the test tasks, run create_images + dump_env; the images' zarr URLs."""
    tasks = {
        task["name"]: task
        for task in expect(
            user.post("/api/v2/task/collect/custom/?private=true", json=collect_body()), 201
        )
    }
    project = expect(user.post("/api/v2/project/", json={"name": "attack"}), 201)
    dataset = expect(
        user.post(f"/api/v2/project/{project['id']}/dataset/", json={"name": "d"}), 201
    )
    base = f"/api/v2/project/{project['id']}"
    workflow = expect(user.post(f"{base}/workflow/", json={"name": "w"}), 201)
    steps = [
        {"task_id": tasks["create_images"]["id"], "args_non_parallel": {"num_images": 1}},
        {
            "task_id": tasks["dump_env"]["id"],
            "args_parallel": {"probe_paths": probe_paths, "probe_pids": probe_pids},
        },
    ]
    expect(user.post(f"{base}/workflow/{workflow['id']}/wftask/", json=steps), 201)
    job = expect(
        user.post(
            f"{base}/job/submit/?workflow_id={workflow['id']}&dataset_id={dataset['id']}",
            json={},
        ),
        202,
    )
    deadline = time.monotonic() + 120
    while (state := expect(user.get(f"{base}/job/{job['id']}/"), 200))["status"] not in (
        "done",
        "failed",
    ):
        assert time.monotonic() < deadline, "the job did not end within 120 s"
        time.sleep(0.3)
    assert state["status"] == "done", state["log"]
    found = expect(user.post(f"{base}/dataset/{dataset['id']}/images/query/", json={}), 200)
    return [image["zarr_url"] for image in found["items"]]


def test_a_local_profile_with_a_username_runs_units_as_that_account(
    api: ApiClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit runs under the account's uid, writes as it, and the runner reads it all."""
    if os.geteuid() != 0:
        pytest.skip("creating the test account and sudo to it need root")  # CI runs as root
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    uid, _gid = ensure_unix_user(ALICE)
    root = shared_dir("local-user")
    try:
        package = root / "pkg"
        shutil.copytree(PKG_ROOT, package)
        (root / "jobs").mkdir(mode=0o755)
        user_jobs = user_owned_dir(root / "user-jobs", ALICE)
        user_data = user_owned_dir(root / "user-data", ALICE)
        resource = expect(
            api.admin.post(
                "/admin/v2/resource/",
                json={
                    "name": "local-as-user",
                    "type": "local",
                    "jobs_local_dir": str(root / "jobs"),
                    "tasks_local_dir": str(root / "tasks"),
                    # The launcher runs as the account: this venv lies under /root.
                    "jobs_slurm_python_worker": CLUSTER_PYTHON,
                },
            ),
            201,
        )
        path = f"/admin/v2/resource/{resource['id']}/profile/"
        refused = api.admin.post(path, json={"name": "no-folder", "username": ALICE})
        assert refused.status_code == 422 and "jobs_remote_dir" in refused.text
        assert api.admin.post(path, json={"name": "bad", "username": "-u root"}).status_code == 422
        profile = expect(
            api.admin.post(
                path,
                json={"name": "as-alice", "username": ALICE, "jobs_remote_dir": str(user_jobs)},
            ),
            201,
        )
        scene = _scene_of_profile(api, profile["id"], package, user_data)
        job_id = _dump_env_job(scene, [], [])
        statuses = run_until_final(settings, [job_id])
        assert statuses[job_id] == "done", scene.job(job_id)["log"]
        found = images(scene.user, scene.project["id"], scene.dataset["id"])
        assert [image["attributes"]["uid"] for image in found] == [uid, uid]
        for image in found:
            report = _report(image["zarr_url"])
            assert report["uid"] == uid
            assert report["environ"]["HOME"] == pwd.getpwnam(ALICE).pw_dir
            assert report["environ"]["USER"] == ALICE
            _assert_no_secret_in(report, list(SERVER_SECRETS.values()))
        unit_files = list(user_jobs.glob("*/*_dump_env/par_*-log.txt"))
        assert unit_files and all(path.stat().st_uid == uid for path in unit_files)
        assert all(path.stat().st_mode & 0o044 for path in unit_files)  # the runner reads them
    finally:
        remove_shared_dir(root)


def _scene_of_profile(api: ApiClient, profile_id: int, package: Path, data: Path) -> Scene:
    email = f"local-user-{time.monotonic_ns()}@example.org"
    body = {
        "email": email,
        "password": USER_PASSWORD,
        "project_dirs": [str(data)],
        "profile_id": profile_id,
    }
    expect(api.admin.post("/auth/register/", json=body), 201)
    token = login(api.client, email, USER_PASSWORD)
    me = expect(
        api.client.get("/auth/current-user/", headers={"Authorization": f"Bearer {token}"}), 200
    )
    user = UserClient(api.client, token, me)
    collect = {**collect_body(), "python_interpreter": CLUSTER_PYTHON, "package_root": str(package)}
    collect["manifest"] = json.loads((package / "__FRACTAL_MANIFEST__.json").read_text())
    tasks = expect(user.post("/api/v2/task/collect/custom/?private=true", json=collect), 201)
    project = expect(user.post("/api/v2/project/", json={"name": "as-user"}), 201)
    dataset = expect(
        user.post(
            f"/api/v2/project/{project['id']}/dataset/",
            json={"name": "d", "zarr_dir": str(data / "zarr")},
        ),
        201,
    )
    return Scene(user, {task["name"]: task for task in tasks}, project, dataset)


# ------------------------------------------------------------------ SLURM


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_slurm_unit_finds_nothing_of_the_server(
    api: ApiClient,
    settings: Settings,
    slurm_conf: str,
    slurm_user: tuple[str, int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sbatch runs with the allow-list only, so the job (worker and units) never gets the
    runner's variables, whether it runs as the user through sudo or not."""
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    scene = slurm_scene(api, slurm_user)
    try:
        job_id = _dump_env_job(scene, [], [])
        statuses = run_until_final(settings, [job_id], timeout=120)
        assert statuses[job_id] == "done", scene.job(job_id)["log"]
        for image in images(scene.user, scene.project["id"], scene.dataset["id"]):
            report = _report(image["zarr_url"])
            assert report["uid"] == slurm_user[1]
            _assert_no_secret_in(report, list(SERVER_SECRETS.values()))
            assert report["environ"]["SLURM_JOB_ID"]  # what slurmd sets is there
            assert report["environ"]["PATH"]
    finally:
        cleanup(scene)


def test_sbatch_as_the_server_s_own_account_exports_no_server_variable(
    monkeypatch: pytest.MonkeyPatch, slurm_conf: str
) -> None:
    """The issue's case: a profile whose cluster user is the server's account (no sudo)."""
    for name, value in SERVER_SECRETS.items():
        monkeypatch.setenv(name, value)
    argv = SlurmCommands(server_user()).as_user(["sbatch", "x.sh"])
    assert argv[:2] == ["env", "-i"] and argv[-2:] == ["sbatch", "x.sh"]
    assert f"SLURM_CONF={slurm_conf}" in argv
    assert not [item for item in argv if any(secret in item for secret in SERVER_SECRETS.values())]


# ------------------------------------------------------------------ task collection


def test_collection_commands_cannot_reach_the_server_s_files(tmp_path: Path) -> None:
    """pip runs the build scripts of users' packages: its commands run confined from the
    server's files, and still get a temporary folder they may use."""
    if sandbox.landlock_abi() < sandbox.MIN_ABI:
        pytest.fail("this test needs Landlock (Linux 5.19 or newer)")
    secret = tmp_path / "data" / "jwt-secret"
    secret.parent.mkdir()
    secret.write_text(JWT_CONTENT)
    work = tmp_path / "tasks"
    work.mkdir()
    probe = (
        "import os, sys, tempfile\n"
        "try:\n"
        "    print(open(sys.argv[1]).read())\n"
        "except OSError as error:\n"
        "    print('denied:', error.strerror)\n"
        "with tempfile.NamedTemporaryFile(dir=os.environ.get('TMPDIR', '/tmp')) as handle:\n"
        "    print('temporary file in', os.path.dirname(handle.name))\n"
    )
    argv = [sys.executable, "-c", probe, str(secret)]
    code, output = asyncio.run(run(argv, cwd=work, timeout=60, confine=[str(secret)]))
    assert code == 0, output
    assert JWT_CONTENT not in output and "denied: Permission denied" in output
    # /tmp lies above the secret here: the command's temporary folder is in its own folder.
    assert f"temporary file in {work}/tmp-" in output
    assert not any(work.iterdir())  # that folder is removed afterwards
    code, output = asyncio.run(run(argv, cwd=work, timeout=60))
    assert code == 0 and JWT_CONTENT in output  # not confined: the same command reads it
