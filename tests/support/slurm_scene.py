"""A user on a real `slurm_sudo` resource: folders a test Unix user owns, tasks it can run.

Everything a SLURM job touches lives under a world-traversable folder in /tmp (pytest's
own tmp_path is private to root): a copy of the test task package, run with Debian's
/usr/bin/python3 (readable by every user, unlike this venv under a private clone), the
server's job folders (root-owned, readable), and the cluster user's job and data folders.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .helpers import USER_PASSWORD, ApiClient, UserClient, expect, login
from .runner_support import PKG_ROOT, Scene
from .slurm_support import associate, shared_dir, user_owned_dir
from .ssh_support import SshServer

CLUSTER_PYTHON = "/usr/bin/python3"
_numbers = itertools.count(1)


def slurm_config(**batching: Any) -> dict[str, Any]:
    """A SLURM configuration for the local cluster; batching values may be overridden."""
    return {
        "default_slurm_config": {
            "partition": "main",
            "cpus_per_task": 1,
            "mem": "200M",
            "time": "00:10:00",
        },
        "batching_config": {
            "target_cpus_per_job": 2,
            "max_cpus_per_job": 2,
            "target_mem_per_job": "400M",
            "max_mem_per_job": "2G",
            "target_num_jobs": 4,
            "max_num_jobs": 20,
            **batching,
        },
    }


@dataclass
class SlurmScene(Scene):
    root: Path
    unix_user: str
    uid: int


def slurm_scene(
    api: ApiClient,
    unix_user: tuple[str, int, int],
    config: dict[str, Any] | None = None,
    slurm_accounts: list[str] | None = None,
    ssh: SshServer | None = None,
    poll_interval: int = 1,
    python_config: dict[str, Any] | None = None,
) -> SlurmScene:
    """With `ssh`, a slurm_ssh resource whose login node is that sshd (the same machine,
    but the runner reaches the cluster only through it), else a slurm_sudo one.
    `python_config`: the resource's tasks_python_config (for task collection)."""
    name, uid, _gid = unix_user
    kind = "slurm_sudo" if ssh is None else "slurm_ssh"
    config = config or slurm_config()
    reach: dict[str, Any] = {}
    if ssh is not None:
        assert ssh.user == name, "the SSH server lets in the scene's user only"
        config = {
            **config,
            "ssh": {
                "port": ssh.port,
                "known_hosts": str(ssh.known_hosts),
                "slurm_conf": os.environ["SLURM_CONF"],
            },
        }
        reach = {"host": "127.0.0.1"}
    number = next(_numbers)
    root = shared_dir(f"scene{number}")
    package = root / "pkg"
    shutil.copytree(PKG_ROOT, package)
    jobs = root / "jobs"
    jobs.mkdir(mode=0o755)
    remote = user_owned_dir(root / "user-jobs", name)
    data = user_owned_dir(root / "user-data", name)
    reach_profile: dict[str, Any] = {}
    if ssh is not None:  # where collected task environments go on the login node
        reach_profile = {
            "ssh_key_path": str(ssh.user_key),
            "tasks_remote_dir": str(user_owned_dir(root / "user-tasks", name)),
        }
    admin = api.admin
    resource = expect(
        admin.post(
            "/admin/v2/resource/",
            json={
                "name": f"slurm-{number}-{root.name}",
                "type": kind,
                "jobs_local_dir": str(jobs),
                "tasks_local_dir": str(root / "tasks"),
                "jobs_runner_config": config,
                **reach,
                "jobs_slurm_python_worker": CLUSTER_PYTHON,
                "jobs_poll_interval": poll_interval,
                **({"tasks_python_config": python_config} if python_config else {}),
            },
        ),
        201,
    )
    profile = expect(
        admin.post(
            f"/admin/v2/resource/{resource['id']}/profile/",
            json={
                "name": f"slurm-profile-{number}-{root.name}",
                "resource_type": kind,
                "username": name,
                "jobs_remote_dir": str(remote),
                **reach_profile,
            },
        ),
        201,
    )
    email = f"slurm{number}-{root.name}@example.org"
    body: dict[str, Any] = {
        "email": email,
        "password": USER_PASSWORD,
        "project_dirs": [str(data)],
        "profile_id": profile["id"],
    }
    if slurm_accounts is not None:
        associate(name, slurm_accounts)  # SLURM must know them, or registration refuses
        body["slurm_accounts"] = slurm_accounts
    expect(admin.post("/auth/register/", json=body), 201)
    token = login(api.client, email, USER_PASSWORD)
    me = expect(
        api.client.get("/auth/current-user/", headers={"Authorization": f"Bearer {token}"}), 200
    )
    user = UserClient(api.client, token, me)
    tasks = expect(
        user.post(
            "/api/v2/task/collect/custom/?private=true",
            json={
                "label": "fl-test-tasks",
                "python_interpreter": CLUSTER_PYTHON,
                "manifest": json.loads((package / "__FRACTAL_MANIFEST__.json").read_text()),
                "version": "0.1.0",
                "package_root": str(package),
            },
        ),
        201,
    )
    project = expect(user.post("/api/v2/project/", json={"name": "slurm-project"}), 201)
    dataset = expect(
        user.post(
            f"/api/v2/project/{project['id']}/dataset/",
            json={"name": "slurm-dataset", "zarr_dir": str(data / "zarr")},
        ),
        201,
    )
    return SlurmScene(
        user, {task["name"]: task for task in tasks}, project, dataset, root, name, uid
    )


def cleanup(scene: SlurmScene) -> None:
    shutil.rmtree(scene.root, ignore_errors=True)
