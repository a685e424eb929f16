"""Workflows on a slurm_ssh resource: the runner reaches the real cluster only through a real
sshd on 127.0.0.1, as the non-root test user with its key (tests/support/ssh_support.py).

The login node shares this machine's file system, but the runner does not rely on it: it
reads every unit's files from its own mirror of the job (the server's job folder), which
only SFTP fills. Every task type, a stop and a SIGKILLed runner are tested on both
transports in test_slurm_runner.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fractal_like.config import Settings

from ..support.helpers import ApiClient, expect
from ..support.runner_support import images, run_until_final
from ..support.slurm_scene import SlurmScene, cleanup, slurm_config, slurm_scene
from ..support.ssh_support import SshServer, free_port, key_refused_after_save
from .test_slurm_runner import (
    _run_in_background,
    _slurm_jobs,
)

ONE_DATABASE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def ssh_scene_factory(
    api: ApiClient, slurm_conf: str, slurm_user: tuple[str, int, int], ssh_server: SshServer
):
    made: list[SlurmScene] = []

    def make(**kwargs: Any) -> SlurmScene:
        scene = slurm_scene(api, slurm_user, ssh=ssh_server, **kwargs)
        made.append(scene)
        return scene

    yield make
    for scene in made:
        cleanup(scene)


def _resource(scene: SlurmScene, api: ApiClient) -> dict[str, Any]:
    profile = expect(api.admin.get(f"/admin/v2/profile/{scene.user.user['profile_id']}/"), 200)
    return expect(api.admin.get(f"/admin/v2/resource/{profile['resource_id']}/"), 200)


@ONE_DATABASE
def test_a_failing_unit_fails_the_job_over_ssh_with_its_log(
    ssh_scene_factory, settings: Settings
) -> None:
    scene = ssh_scene_factory()
    job_id = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 2}}),
        ("fail", {"args_parallel": {"message": "broken over ssh"}}),
    )
    statuses = run_until_final(settings, [job_id], timeout=90)
    assert statuses[job_id] == "failed"
    message = scene.job(job_id)["executor_error_log"]
    assert "broken over ssh" in message  # the unit's log, fetched from the cluster


@ONE_DATABASE
def test_a_dropped_connection_mid_job_does_not_lose_it(
    ssh_scene_factory, settings: Settings, ssh_server: SshServer
) -> None:
    # Eight SLURM jobs for the parallel task: sbatch calls, file writes, listings and
    # squeue all meet a dropped connection at some point.
    config = slurm_config(target_num_jobs=8, target_cpus_per_job=1, max_cpus_per_job=1)
    scene = ssh_scene_factory(config=config)
    job_id = scene.submit_steps(
        ("create_images", {"args_non_parallel": {"num_images": 8}}),
        ("measure_intensity", {"args_parallel": {"sleep": 2}}),
    )
    thread, result = _run_in_background(settings, job_id, 150)
    dropped = 0
    deadline = time.monotonic() + 150
    while thread.is_alive() and time.monotonic() < deadline:
        dropped += ssh_server.drop_connections()  # every connection, every 0.4 s
        time.sleep(0.4)
    thread.join(10)
    job = scene.job(job_id)
    assert result[job_id] == "done", job["log"]
    assert dropped >= 3
    assert len(_slurm_jobs(settings, job_id)) == 1 + 8  # nothing submitted twice
    found = images(scene.user, scene.project["id"], scene.dataset["id"])
    assert len(found) == 8 and all(image["attributes"].get("measured") for image in found)
    runs = list(Path(scene.dataset["zarr_dir"]).rglob("runs.log"))
    assert len(runs) == 8
    for run_log in runs:
        assert len(run_log.read_text().splitlines()) == 1, f"{run_log} ran more than once"


@ONE_DATABASE
def test_a_refused_key_or_a_silent_host_fails_the_job_in_plain_words(
    ssh_scene_factory,
    settings: Settings,
    api: ApiClient,
    tmp_path: Path,
    ssh_server: SshServer,
) -> None:
    scene = ssh_scene_factory()
    resource = _resource(scene, api)
    profile_id = scene.user.user["profile_id"]
    # A key that passed the checks when saved, refused later (revoked, say).
    key, break_it = key_refused_after_save(ssh_server, tmp_path / "alice-key")
    patch = {"ssh_key_path": str(key)}
    expect(api.admin.patch(f"/admin/v2/profile/{profile_id}/", json=patch), 200)
    break_it()
    refused = scene.submit_steps(("create_images", {"args_non_parallel": {"num_images": 1}}))
    assert run_until_final(settings, [refused], timeout=60)[refused] == "failed"
    message = scene.job(refused)["executor_error_log"]
    assert f"refused the SSH key {key}" in message, message

    closed = free_port()  # nothing listens there
    config = {**resource["jobs_runner_config"]}
    config["ssh"] = {**config["ssh"], "port": closed}
    expect(
        api.admin.patch(
            f"/admin/v2/resource/{resource['id']}/", json={"jobs_runner_config": config}
        ),
        200,
    )
    silent = scene.submit_steps(("create_images", {"args_non_parallel": {"num_images": 1}}))
    started = time.monotonic()
    assert run_until_final(settings, [silent], timeout=90)[silent] == "failed"
    assert time.monotonic() - started < 60  # a bounded retry, not a hang
    message = scene.job(silent)["executor_error_log"]
    assert f"cannot reach 127.0.0.1:{closed} over SSH" in message, message
