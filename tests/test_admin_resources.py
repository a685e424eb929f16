"""Compute resources and profiles under /admin/v2/."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import ApiClient, expect

SLURM_CONFIG = json.loads(
    (Path(__file__).parent.parent / "slurm-config" / "single-node.json").read_text()
)


def _slurm_resource(**overrides: object) -> dict:
    body = {
        "name": "cluster",
        "type": "slurm_sudo",
        "jobs_local_dir": "/srv/jobs",
        "tasks_local_dir": "/srv/tasks",
        "jobs_slurm_python_worker": "/usr/bin/python3",
        "jobs_runner_config": SLURM_CONFIG,
    }
    body.update(overrides)
    return body


def test_resource_crud(api: ApiClient) -> None:
    admin = api.admin
    created = expect(admin.post("/admin/v2/resource/", json=_slurm_resource()), 201)
    assert created["jobs_runner_config"]["default_slurm_config"]["partition"] == "main"
    expect(admin.post("/admin/v2/resource/", json=_slurm_resource()), 422)  # name taken
    rid = created["id"]
    assert [item["id"] for item in expect(admin.get("/admin/v2/resource/"), 200)] == [rid]
    patched = expect(
        admin.patch(f"/admin/v2/resource/{rid}/", json={"jobs_poll_interval": 30}), 200
    )
    assert patched["jobs_poll_interval"] == 30
    broken = {"jobs_runner_config": {"default_slurm_config": {"partition": "main"}}}
    expect(admin.patch(f"/admin/v2/resource/{rid}/", json=broken), 422)
    assert expect(admin.get(f"/admin/v2/resource/{rid}/"), 200)["jobs_poll_interval"] == 30
    expect(admin.delete(f"/admin/v2/resource/{rid}/"), 204)
    expect(admin.get(f"/admin/v2/resource/{rid}/"), 404)


def test_resource_validation(api: ApiClient) -> None:
    admin = api.admin
    bad_configs = [
        _slurm_resource(jobs_runner_config={}),
        _slurm_resource(jobs_slurm_python_worker=None),
        _slurm_resource(type="slurm_ssh"),  # needs host
        _slurm_resource(type="kubernetes"),
        _slurm_resource(jobs_local_dir="relative"),
        _slurm_resource(unknown=1),
        _slurm_resource(
            jobs_runner_config={
                **SLURM_CONFIG,
                "default_slurm_config": {"partition": "main\n#SBATCH --uid=0"},
            }
        ),
        _slurm_resource(
            jobs_runner_config={
                **SLURM_CONFIG,
                "default_slurm_config": {"partition": "m", "mem": "lots"},
            }
        ),
        _slurm_resource(
            jobs_runner_config={
                **SLURM_CONFIG,
                "batching_config": {**SLURM_CONFIG["batching_config"], "target_num_jobs": 999},
            }
        ),
        {
            "name": "l",
            "type": "local",
            "jobs_local_dir": "/a",
            "tasks_local_dir": "/b",
            "jobs_runner_config": {"parallel_tasks_per_job": 0},
        },
        {
            "name": "l",
            "type": "local",
            "jobs_local_dir": "/a",
            "tasks_local_dir": "/b",
            "jobs_runner_config": {"memory_limit_per_unit_mb": 8},  # no Python starts in 8 MB
        },
    ]
    for body in bad_configs:
        expect(admin.post("/admin/v2/resource/", json=body), 422)
    assert expect(admin.get("/admin/v2/resource/"), 200) == []
    ssh = expect(
        admin.post(
            "/admin/v2/resource/", json=_slurm_resource(type="slurm_ssh", host="login.example.org")
        ),
        201,
    )
    assert ssh["host"] == "login.example.org"


def test_profiles(api: ApiClient) -> None:
    admin = api.admin
    resource = expect(admin.post("/admin/v2/resource/", json=_slurm_resource()), 201)
    url = f"/admin/v2/resource/{resource['id']}/profile/"
    expect(admin.post(url, json={"name": "p"}), 422)  # slurm needs a username
    expect(admin.post(url, json={"name": "p", "username": "Bad User"}), 422)
    expect(admin.post(url, json={"name": "p", "username": "alice", "resource_type": "local"}), 422)
    profile = expect(admin.post(url, json={"name": "p", "username": "alice"}), 201)
    assert profile["resource_type"] == "slurm_sudo" and profile["username"] == "alice"
    expect(admin.post("/admin/v2/resource/999/profile/", json={"name": "q"}), 404)
    assert [item["id"] for item in expect(admin.get(url), 200)] == [profile["id"]]
    pid = profile["id"]
    renamed = expect(admin.patch(f"/admin/v2/profile/{pid}/", json={"username": "bob"}), 200)
    assert renamed["username"] == "bob"
    expect(admin.patch(f"/admin/v2/profile/{pid}/", json={"username": None}), 422)

    # In use: neither the resource nor the profile can go.
    user = api.new_user(with_profile=False)
    expect(admin.patch(f"/auth/users/{user.id}/", json={"profile_id": pid}), 200)
    expect(admin.delete(f"/admin/v2/resource/{resource['id']}/"), 422)
    expect(admin.delete(f"/admin/v2/profile/{pid}/"), 422)
    expect(admin.patch(f"/auth/users/{user.id}/", json={"profile_id": None}), 200)
    expect(admin.delete(f"/admin/v2/profile/{pid}/"), 204)
    expect(admin.delete(f"/admin/v2/resource/{resource['id']}/"), 204)


def test_admin_routes_are_for_superusers(api: ApiClient) -> None:
    user = api.new_user()
    expect(user.get("/admin/v2/resource/"), 403)
    expect(user.post("/admin/v2/resource/", json=_slurm_resource()), 403)
    expect(user.get("/admin/v2/profile/"), 403)
    expect(api.client.get("/admin/v2/resource/"), 401)
