"""POST /api/v2/task/collect/pixi/: form checks, records, and the collector's pixi build.

No real pixi can be installed here (none of the reachable registries ships its binary,
and `pixi install` would need the conda channels anyway), so the collector's run is
tested with a stand-in `pixi` program at the configured place (<versions[v]>/bin/pixi)
that does what the three pixi commands we call do, on a workspace without conda
dependencies: `install` (refusing --frozen without a pixi.lock, as pixi does),
`shell-hook --json` and `run`. Everything of ours around it is real: the route, the
archive, the collector (confined), the activation script and Python wrapper, the
manifest, the tasks, and a job that runs a task through the wrapper.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from fractal_like.config import Settings
from fractal_like.models import TaskGroup
from fractal_like.services.collection import pixi_start
from fractal_like.services.collection.pixi_start import start_pixi_reset

from ..support.collection_support import TASKS_PKG, run_collector
from ..support.helpers import USER_PASSWORD, ApiClient, UserClient, expect, login, run_in_session
from ..support.runner_support import build_workflow, images, run_until_final, submit

COLLECT = "/api/v2/task/collect/pixi/"
PIXI_VERSION = "0.54.1"
PACKAGE = "fl_test_tasks"  # the import name of tests/support/tasks_pkg

PYPROJECT = """\
[project]
name = "fl-test-tasks"
version = "{version}"

[tool.pixi.workspace]
channels = ["conda-forge"]
platforms = ["linux-64", "osx-arm64"]

[tool.pixi.tasks]
hello = "echo hello"
"""

# What the stand-in does for each command we run; it records every call in calls.jsonl.
STAND_IN = """\
#!{python}
import json, os, pathlib, sys

args = sys.argv[1:]
home = pathlib.Path(os.environ["PIXI_HOME"])
with open(home / "calls.jsonl", "a") as log:
    names = ("PIXI_HOME", "PIXI_CACHE_DIR", "RATTLER_AUTH_FILE", "TOKIO_WORKER_THREADS")
    log.write(json.dumps({{"argv": args, "env": {{n: os.environ.get(n) for n in names}}}}) + "\\n")
command, rest = args[0], args[1:]
options = {{}}
while rest and rest[0].startswith("--"):
    name = rest.pop(0)
    options[name] = True if name in ("--frozen", "--json") else rest.pop(0)
workspace = pathlib.Path(options["--manifest-path"]).parent
prefix = workspace / ".pixi" / "envs" / options["--environment"]
variables = {{
    "PATH": f"{{prefix}}/bin:{{os.environ.get('PATH', '')}}",
    "CONDA_PREFIX": str(prefix),
    "PYTHONPATH": str(workspace),
}}
if command == "install":
    if "[tool.pixi" not in (workspace / "pyproject.toml").read_text():
        sys.exit("x no pixi workspace in the manifest")
    lock = workspace / "pixi.lock"
    if "--frozen" in options and not lock.exists():
        sys.exit("x lock-file not up-to-date with the workspace")
    if not lock.exists():
        lock.write_text("version: 6\\nenvironments: {{}}\\npackages: []\\n")
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to("{python}")
    print("✔ The default environment has been installed.")
elif command == "shell-hook":
    print("a note before the JSON", file=sys.stderr)
    print(json.dumps({{"environment_variables": variables}}, indent=2))
elif command == "run":
    os.execvpe(rest[0], rest, {{**os.environ, **variables}})
else:
    sys.exit(f"unknown command {{command}}")
"""


def make_pixi(root: Path) -> Path:
    """The stand-in pixi at <root>/<version>/bin/pixi; returns <root>/<version>."""
    home = root / PIXI_VERSION
    (home / "bin").mkdir(parents=True)
    binary = home / "bin" / "pixi"
    binary.write_text(STAND_IN.format(python=sys.executable))
    binary.chmod(0o755)
    return home


def archive(version: str = "0.1.0", *, lock: bool = True, top: str | None = None) -> bytes:
    """A pixi task package as Fractal's clients upload it: tests/support/tasks_pkg in <top>/."""
    top = top or f"{PACKAGE}-{version}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("pyproject.toml", PYPROJECT.format(version=version).encode())
        if lock:
            add("pixi.lock", b"version: 6\n# the archive's own lock\n")
        for path in sorted((TASKS_PKG / PACKAGE).glob("*")):
            if path.is_file():
                add(f"{PACKAGE}/{path.name}", path.read_bytes())
    return buffer.getvalue()


def pixi_user(api: ApiClient, pixi_config: dict[str, Any]) -> tuple[UserClient, dict[str, Any]]:
    """A new user on a new local resource with this tasks_pixi_config; and the resource."""
    name = f"pixi-{len(api.admin.get('/admin/v2/resource/').json()) + 1}"
    resource = expect(
        api.admin.post(
            "/admin/v2/resource/",
            json={
                "name": name,
                "type": "local",
                "jobs_local_dir": str(api.tmp_path / name / "jobs"),
                "tasks_local_dir": str(api.tmp_path / name / "tasks"),
                "tasks_pixi_config": pixi_config,
            },
        ),
        201,
    )
    profile = expect(
        api.admin.post(
            f"/admin/v2/resource/{resource['id']}/profile/",
            json={"name": f"{name}-profile", "resource_type": "local"},
        ),
        201,
    )
    email = f"{name}@example.org"
    data = api.tmp_path / f"{name}-data"
    data.mkdir(parents=True)
    body = {
        "email": email,
        "password": USER_PASSWORD,
        "project_dirs": [str(data)],
        "profile_id": profile["id"],
    }
    expect(api.admin.post("/auth/register/", json=body), 201)
    token = login(api.client, email, USER_PASSWORD)
    me = expect(
        api.client.get("/auth/current-user/", headers={"Authorization": f"Bearer {token}"}), 200
    )
    return UserClient(api.client, token, me), resource


def config_for(home: Path, **changes: Any) -> dict[str, Any]:
    return {"default_version": PIXI_VERSION, "versions": {PIXI_VERSION: str(home)}, **changes}


def post(user: UserClient, content: bytes, filename: str, query: str = "", **form: str) -> Any:
    files = {"file": (filename, content, "application/gzip")}
    return user.post(f"{COLLECT}{query}", data=form, files=files)


def collect(settings: Settings, user: UserClient, response: Any) -> dict[str, Any]:
    activity = expect(response, 202)
    assert activity["status"] == "pending" and activity["action"] == "collect"
    run_collector(settings, [activity["id"]])
    return expect(user.get(f"/api/v2/task-group/activity/{activity['id']}/"), 200)


def calls(home: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (home / "calls.jsonl").read_text().splitlines()]


def test_form_checks_and_refusals(api: ApiClient, tmp_path: Path) -> None:
    good = archive()
    name = f"{PACKAGE}-0.1.0.tar.gz"
    # A resource without pixi answers in Fractal's words.
    plain, _ = pixi_user(api, {})
    refused = expect(post(plain, good, name), 422)
    assert refused["detail"] == "Pixi task collection is not available."

    files = {"file": (name, good, "application/gzip")}
    assert api.client.post(COLLECT, files=files).status_code == 401
    guest = api.new_user(with_profile=False)
    expect(post(guest, good, name), 403)

    user, resource = pixi_user(api, config_for(make_pixi(tmp_path / "pixi")))
    expect(user.post(COLLECT, data={"pixi_version": PIXI_VERSION}), 422)  # no file
    assert "not available" in expect(post(user, good, name, pixi_version="9.9.9"), 422)["detail"]
    expect(post(user, good, name, use_pixi_lockfile="maybe"), 422)
    assert ".tar.gz" in expect(post(user, good, f"{PACKAGE}-0.1.0.zip"), 422)["detail"]
    assert "single '-'" in expect(post(user, good, "fl-test-tasks-0.1.0.tar.gz"), 422)["detail"]
    expect(post(user, good, f"{PACKAGE}-not~a~version.tar.gz"), 422)
    expect(post(user, good, "../x-1.0.tar.gz"), 422)
    assert "gzip" in expect(post(user, b"not an archive", name), 422)["detail"]
    other_top = archive(top="elsewhere-0.1.0")
    assert "pyproject.toml" in expect(post(user, other_top, name), 422)["detail"]
    expect(post(user, good, name, "?user_group_id=2147483647"), 404)
    others = expect(api.admin.post("/auth/group/", json={"name": "pixi-others"}), 201)
    expect(post(user, good, name, f"?user_group_id={others['id']}"), 403)  # not a member
    # Nothing was left behind by the refusals: the same package is accepted afterwards.
    tasks_root = Path(resource["tasks_local_dir"])
    assert not any(tasks_root.rglob("*.tar.gz"))
    expect(post(user, good, name), 202)
    assert "already provides" in expect(post(user, good, name), 422)["detail"]
    # A guest account may not collect.
    expect(api.admin.patch(f"/auth/users/{user.user['id']}/", json={"is_guest": True}), 200)
    expect(post(user, archive("0.3.0"), f"{PACKAGE}-0.3.0.tar.gz"), 403)


def test_collection_builds_the_environment_and_the_tasks_run(
    api: ApiClient, settings: Settings, tmp_path: Path
) -> None:
    home = make_pixi(tmp_path / "pixi")
    user, resource = pixi_user(api, config_for(home, TOKIO_WORKER_THREADS=3))
    done = collect(
        settings, user, post(user, archive(), f"{PACKAGE}-0.1.0.tar.gz", "?private=true")
    )
    assert done["status"] == "OK", done["log"]
    group = expect(user.get(f"/api/v2/task-group/{done['taskgroupv2_id']}/"), 200)
    folder = Path(resource["tasks_local_dir"]) / str(user.user["id"]) / "fl-test-tasks" / "0.1.0"
    assert group["origin"] == "pixi" and group["pixi_version"] == PIXI_VERSION
    assert group["pkg_name"] == "fl-test-tasks" and group["version"] == "0.1.0"
    assert group["path"] == str(folder)
    assert group["archive_path"] == str(folder / f"{PACKAGE}-0.1.0.tar.gz")
    assert "the archive's own lock" in (group.get("pip_freeze") or "")

    # pixi ran as configured: --frozen by default, its settings in its environment.
    install = next(call for call in calls(home) if call["argv"][0] == "install")
    assert "--frozen" in install["argv"] and "--environment" in install["argv"]
    assert install["env"]["PIXI_CACHE_DIR"] == str(home / "cache")
    assert install["env"]["TOKIO_WORKER_THREADS"] == "3"

    wrapper = folder / "source_dir" / "project_python.sh"
    task = next(task for task in group["task_list"] if task["name"] == "create_images")
    assert task["command_non_parallel"].startswith(f"{wrapper} {folder / 'source_dir' / PACKAGE}/")
    probe = subprocess.run(
        [str(wrapper), "-c", f"import {PACKAGE}, os; print(os.environ['CONDA_PREFIX'])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert probe.stdout.strip().endswith(".pixi/envs/default")

    # Another user sees neither the group nor its activity.
    other, _ = pixi_user(api, config_for(home))
    assert other.get(f"/api/v2/task-group/{group['id']}/").status_code in (403, 404)
    assert other.get(f"/api/v2/task-group/activity/{done['id']}/").status_code in (403, 404)

    # A job runs the collected converter through the wrapper.
    project = expect(user.post("/api/v2/project/", json={"name": "pixi"}), 201)
    zarr_dir = Path(user.user["project_dirs"][0]) / "zarr"
    dataset = expect(
        user.post(
            f"/api/v2/project/{project['id']}/dataset/",
            json={"name": "pixi", "zarr_dir": str(zarr_dir)},
        ),
        201,
    )
    workflow = build_workflow(
        user, project["id"], [(task, {"args_non_parallel": {"num_images": 2}})]
    )
    job = submit(user, project["id"], workflow["id"], dataset["id"])
    assert run_until_final(settings, [job["id"]]) == {job["id"]: "done"}
    assert len(images(user, project["id"], dataset["id"])) == 2


def test_lockfile_choice_a_failed_install_and_a_reset(
    api: ApiClient, settings: Settings, tmp_path: Path
) -> None:
    home = make_pixi(tmp_path / "pixi")
    user, resource = pixi_user(api, config_for(home))
    unlocked = archive("0.2.0", lock=False)
    name = f"{PACKAGE}-0.2.0.tar.gz"

    # --frozen (the default) without a pixi.lock fails; nothing stays behind.
    failed = collect(settings, user, post(user, unlocked, name))
    assert failed["status"] == "failed"
    assert "lock-file not up-to-date" in failed["log"]
    assert failed["taskgroupv2_id"] is None
    assert not (Path(resource["tasks_local_dir"]) / str(user.user["id"])).exists()

    # Without the lockfile pixi solves (and writes pixi.lock): the same package collects.
    done = collect(settings, user, post(user, unlocked, name, use_pixi_lockfile="false"))
    assert done["status"] == "OK", done["log"]
    install = [call for call in calls(home) if call["argv"][0] == "install"][-1]
    assert "--frozen" not in install["argv"]

    # Deactivating removes the environment; reactivating installs the recorded pixi.lock
    # again (--frozen); an admin's reset rebuilds it from the archive (frozen to a lock the
    # archive lacks it fails and the group stays inactive; solving, it is active again).
    group_id = done["taskgroupv2_id"]
    folder = Path(expect(user.get(f"/api/v2/task-group/{group_id}/"), 200)["path"])
    source = folder / "source_dir"

    def lifecycle(action: str) -> dict[str, Any]:
        activity = expect(user.post(f"/api/v2/task-group/{group_id}/{action}/"), 202)
        run_collector(settings, [activity["id"]])
        return expect(user.get(f"/api/v2/task-group/activity/{activity['id']}/"), 200)

    def active() -> bool:
        return expect(user.get(f"/api/v2/task-group/{group_id}/"), 200)["active"]

    assert lifecycle("deactivate")["status"] == "OK"
    assert not source.exists() and not active()
    reactivated = lifecycle("reactivate")
    assert reactivated["status"] == "OK", reactivated["log"]
    assert active() and (source / "project_python.sh").is_file()
    install = [call for call in calls(home) if call["argv"][0] == "install"][-1]
    assert "--frozen" in install["argv"]
    assert lifecycle("deactivate")["status"] == "OK"

    def reset(use_pixi_lockfile: bool) -> dict[str, Any]:
        async def start(session: Any) -> int:
            group = await session.get(TaskGroup, group_id)
            activity = await start_pixi_reset(session, group, use_pixi_lockfile=use_pixi_lockfile)
            return activity.id

        activity_id = run_in_session(settings.database_url, start)
        run_collector(settings, [activity_id])
        return expect(user.get(f"/api/v2/task-group/activity/{activity_id}/"), 200)

    failed = reset(True)
    assert failed["status"] == "failed" and failed["action"] == "reset"
    assert not source.exists() and not active()
    done = reset(False)
    assert done["status"] == "OK", done["log"]
    assert (source / "project_python.sh").is_file() and active()

    # Deleting the group removes its folder, archive included.
    deleted = lifecycle("delete")
    assert deleted["status"] == "OK", deleted["log"]
    assert not folder.exists()


def test_big_archives_and_packages_found_outside_are_refused(
    api: ApiClient, settings: Settings, tmp_path: Path, monkeypatch: Any
) -> None:
    home = make_pixi(tmp_path / "pixi")
    user, _ = pixi_user(api, config_for(home))
    monkeypatch.setattr(pixi_start, "MAX_UNPACKED_BYTES", 1000)
    big = expect(post(user, archive(), f"{PACKAGE}-0.1.0.tar.gz"), 422)["detail"]
    assert "add up to more than 1000 bytes" in big
    monkeypatch.undo()

    # `json-1.0.tar.gz` imports as the standard library's json: outside the workspace, so
    # its "manifest" is never read.
    failed = collect(settings, user, post(user, archive(top="json-1.0"), "json-1.0.tar.gz"))
    assert failed["status"] == "failed"
    assert "outside" in failed["log"] and "must stay in the workspace" in failed["log"]
