"""Task collection on a slurm_ssh resource: the venv is built on the login node (a real sshd
on 127.0.0.1 in front of the dev cluster), as the profile's non-root user, under the
profile's tasks_remote_dir; then a workflow of the collected tasks runs there.

Offline, as every collection test: pip looks only into a folder of wheels (--no-index
--find-links), copied where the cluster user can read it.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from fractal_like.config import Settings

from ..services.test_task_collection import lifecycle, manifest_tasks, tasks_by_name
from ..support.collection_support import (
    PKG_NAME,
    PKG_VERSION,
    Wheels,
    collect_and_wait,
    upload,
    wheels_fixture,  # noqa: F401 (the `wheels` fixture)
)
from ..support.helpers import ApiClient, expect
from ..support.runner_support import images, run_until_final
from ..support.slurm_scene import CLUSTER_PYTHON, SlurmScene, cleanup, slurm_scene
from ..support.ssh_support import SshServer

ONE_DATABASE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
COLLECT = "/api/v2/task/collect/pip/"


def _cluster_python_version() -> str:
    return subprocess.run(
        [CLUSTER_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def ssh_collect_scene(
    api: ApiClient,
    slurm_conf: str,
    slurm_user: tuple[str, int, int],
    ssh_server: SshServer,
    wheels: Wheels,
):
    """A slurm_ssh scene whose resource collects with the cluster's Python, offline."""
    made: list[SlurmScene] = []

    def make() -> SlurmScene:
        version = _cluster_python_version()
        # The wheels folder as pytest made it is root's alone: the cluster user reads a copy.
        readable = Path(
            shutil.copytree(wheels.folder, f"{ssh_server.folder}/wheels", dirs_exist_ok=True)
        )
        config = {
            "default_version": version,
            "versions": {version: CLUSTER_PYTHON},
            "pip_extra_args": ["--no-index", "--find-links", str(readable)],
        }
        scene = slurm_scene(api, slurm_user, ssh=ssh_server, python_config=config)
        made.append(scene)
        return scene

    yield make
    for scene in made:
        cleanup(scene)


def _owner(path: Path) -> int:
    return path.stat().st_uid


@ONE_DATABASE
def test_a_wheel_collected_over_ssh_lives_on_the_login_node_and_its_tasks_run_there(
    ssh_collect_scene, settings: Settings, wheels: Wheels, ssh_server: SshServer
) -> None:
    scene: SlurmScene = ssh_collect_scene()
    user = scene.user
    activity = collect_and_wait(settings, user, upload(user, wheels.tasks))
    assert activity["status"] == "OK", activity["log"]
    log = activity["log"]
    assert "(SFTP)" in log and "pip from ensurepip" in log
    assert f"registered {len(manifest_tasks())} task(s)" in log

    group = expect(user.get(f"/api/v2/task-group/{activity['taskgroupv2_id']}/"), 200)
    remote_root = scene.root / "user-tasks"
    folder = remote_root / str(user.user["id"]) / PKG_NAME / PKG_VERSION
    assert group["path"] == str(folder) and group["venv_path"] == str(folder / "venv")
    python = folder / "venv" / "bin" / "python"
    # Built as the SSH user, on the cluster side; the wheel went there over SFTP.
    assert _owner(folder / "venv") == scene.uid
    assert _owner(folder / "venv" / "pyvenv.cfg") == scene.uid
    assert _owner(folder / wheels.tasks.name) == scene.uid
    assert group["pip_freeze"] and "fractal-like-test-tasks" in group["pip_freeze"]
    # The server's copy of the upload is gone once sent.
    assert not list((scene.root / "tasks").rglob("*.whl"))

    tasks = tasks_by_name(user, group["id"])
    for task in tasks.values():
        for command in (task["command_non_parallel"], task["command_parallel"]):
            assert command is None or command.startswith(shlex.quote(str(python)) + " ")

    collected = dataclasses.replace(scene, tasks=tasks)
    job_id = collected.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 2}}),
        ("measure_intensity", {}),
    )
    statuses = run_until_final(settings, [job_id], timeout=150)
    assert statuses[job_id] == "done", collected.job(job_id)["log"]
    found = images(user, scene.project["id"], scene.dataset["id"])
    assert len(found) == 2 and all(image["attributes"].get("measured") for image in found)

    # Lifecycle on the login node: deactivate removes the venv there, reactivate rebuilds it.
    deactivated = lifecycle(settings, user, group["id"], "deactivate")
    assert deactivated["status"] == "OK", deactivated["log"]
    assert not (folder / "venv").exists() and (folder / wheels.tasks.name).exists()
    reactivated = lifecycle(settings, user, group["id"], "reactivate")
    assert reactivated["status"] == "OK", reactivated["log"]
    assert _owner(python.parent) == scene.uid and python.exists()

    # Once no workflow uses its tasks, deleting the group removes its folder there.
    workflow_id = collected.job(job_id)["workflow_id"]
    expect(user.delete(f"/api/v2/project/{scene.project['id']}/workflow/{workflow_id}/"), 204)
    deleted = lifecycle(settings, user, group["id"], "delete")
    assert deleted["status"] == "OK", deleted["log"]
    assert not folder.exists() and not folder.parent.parent.exists()  # emptied parents too
    assert remote_root.is_dir()  # the tasks root itself stays


@ONE_DATABASE
def test_over_ssh_a_failed_pip_leaves_nothing_and_the_delete_route_removes_the_folder(
    ssh_collect_scene, settings: Settings
) -> None:
    scene: SlurmScene = ssh_collect_scene()
    user = scene.user
    user_folder = scene.root / "user-tasks" / str(user.user["id"])

    failed = collect_and_wait(
        settings,
        user,
        user.post(COLLECT, data={"package": "fl-no-such-package", "package_version": "1.0"}),
    )
    assert failed["status"] == "failed"
    # pip's own words, from the login node, in the log; nothing left there or here.
    assert "No matching distribution found for fl-no-such-package==1.0" in failed["log"]
    assert failed["taskgroupv2_id"] is None
    assert not (user_folder / "fl-no-such-package").exists()

    # By name without a version: pip resolves it in a probe venv on the login node.
    collected = collect_and_wait(settings, user, user.post(COLLECT, data={"package": PKG_NAME}))
    assert collected["status"] == "OK", collected["log"]
    assert collected["version"] == PKG_VERSION
    folder = user_folder / PKG_NAME / PKG_VERSION
    assert (folder / "venv" / "bin" / "python").exists()
    assert [path.name for path in (scene.root / "user-tasks").iterdir()] == [user_folder.name]

    # DELETE /task-group/{id}/ removes it at once, over the API's own SSH connection.
    expect(user.delete(f"/api/v2/task-group/{collected['taskgroupv2_id']}/"), 204)
    assert not folder.exists() and not user_folder.exists()
    assert (scene.root / "user-tasks").is_dir()
    expect(user.get(f"/api/v2/task-group/{collected['taskgroupv2_id']}/"), 404)
