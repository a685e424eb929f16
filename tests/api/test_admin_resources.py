"""Compute resources and profiles under /admin/v2/: the routes' own rules.

These run without a cluster: the setup checks a save of a SLURM resource runs are
replaced by none here, and tested against the real cluster in
tests/slurm/test_resource_checks.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fractal_like.api.routers.admin_resources import save_checker
from fractal_like.models import Profile, Resource
from fractal_like.runner.slurm.checks import Check

from ..support.helpers import ApiClient, expect

SLURM_CONFIG = json.loads(
    (Path(__file__).parents[2] / "slurm-config" / "single-node.json").read_text()
)


async def _unchecked(resource: Resource, profiles: list[Profile], server: bool) -> list[Check]:
    return []


@pytest.fixture(autouse=True)
def _no_cluster(app_client: TestClient) -> None:
    app_client.app.dependency_overrides[save_checker] = lambda: _unchecked  # type: ignore[attr-defined]


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
        _slurm_resource(jobs_poll_interval=-1),
        _slurm_resource(jobs_poll_interval=2**31),
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


def test_the_ssh_section_of_a_slurm_ssh_resource(api: ApiClient) -> None:
    admin = api.admin
    example = json.loads(
        (Path(__file__).parents[2] / "slurm-config" / "slurm-ssh.json").read_text()
    )
    body = _slurm_resource(
        name="ssh-example", type="slurm_ssh", host="login.example.org", jobs_runner_config=example
    )
    saved = expect(admin.post("/admin/v2/resource/", json=body), 201)
    assert saved["jobs_runner_config"]["ssh"]["known_hosts"] == "/etc/fractal-like/known_hosts"
    # Only a slurm_ssh resource reaches a host; values are checked, never passed on blindly.
    sudo = _slurm_resource(name="sudo-ssh", jobs_runner_config=example)
    detail = expect(admin.post("/admin/v2/resource/", json=sudo), 422)
    assert "only a slurm_ssh resource may set jobs_runner_config.ssh" in json.dumps(detail)
    for bad in (
        {"port": 0},
        {"port": 70000},
        {"known_hosts": "relative/known_hosts"},
        {"slurm_conf": "/etc/slurm.conf; rm -rf /"},
        {"ciphers": "none"},
    ):
        config = {**example, "ssh": bad}
        body = _slurm_resource(
            name="bad-ssh", type="slurm_ssh", host="login", jobs_runner_config=config
        )
        expect(admin.post("/admin/v2/resource/", json=body), 422)


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


PIXI = {"versions": {"0.47.0": "/opt/pixi/0.47.0"}, "default_version": "0.47.0"}
PIXI_SLURM = {"partition": "main", "cpus": 2, "mem": "4G", "time": "10:00"}


def test_resource_bodies_as_fractal_accepts_them(api: ApiClient) -> None:
    """Unknown fields ignored, a poll interval of 0, and pixi's configuration (or `{}`)."""
    admin = api.admin
    created = expect(
        admin.post(
            "/admin/v2/resource/",
            json=_slurm_resource(
                unknown=1, jobs_poll_interval=0, tasks_pixi_config={**PIXI, "future": 1}
            ),
        ),
        201,
    )
    assert "unknown" not in created and created["jobs_poll_interval"] == 0
    pixi = created["tasks_pixi_config"]
    assert pixi["versions"] == PIXI["versions"] and pixi["PIXI_CONCURRENT_SOLVES"] == 4
    assert "future" not in pixi and pixi["SLURM_CONFIG"] is None
    assert (
        expect(admin.get(f"/admin/v2/resource/{created['id']}/"), 200)["tasks_pixi_config"] == pixi
    )
    empty = expect(
        admin.post("/admin/v2/resource/", json=_slurm_resource(name="c2", tasks_pixi_config={})),
        201,
    )
    assert empty["tasks_pixi_config"] == {}
    python = {"default_version": "3.11", "versions": {"3.11": "/usr/bin/python3"}, "extra": 1}
    with_python = expect(
        admin.post(
            "/admin/v2/resource/", json=_slurm_resource(name="c3", tasks_python_config=python)
        ),
        201,
    )
    assert "extra" not in with_python["tasks_python_config"]
    bad_pixi = [
        {"versions": {}},
        {**PIXI, "default_version": "0.48.0"},
        {"versions": {"0.47.0": "/opt/pixi/other"}, "default_version": "0.47.0"},
        {"versions": {"0.47.0": "relative/0.47.0"}, "default_version": "0.47.0"},
        {"versions": {"../x": "/opt/pixi/../x"}, "default_version": "../x"},
        {
            "versions": {"0.47.0": "/a/0.47.0", "0.48.0": "/b/0.48.0"},
            "default_version": "0.47.0",
        },
        {**PIXI, "SLURM_CONFIG": {**PIXI_SLURM, "mem_per_cpu": "1G"}},  # both memories
        {**PIXI, "SLURM_CONFIG": {**PIXI_SLURM, "partition": "main\n#SBATCH --uid=0"}},
        {**PIXI, "SLURM_CONFIG": {**PIXI_SLURM, "mem": "4"}},  # no unit
    ]
    for config in bad_pixi:
        body = _slurm_resource(name="bad", tasks_pixi_config=config)
        expect(admin.post("/admin/v2/resource/", json=body), 422)
    # A slurm_ssh resource runs pixi through SLURM: it needs SLURM_CONFIG.
    ssh = _slurm_resource(name="ssh", type="slurm_ssh", host="login", tasks_pixi_config=PIXI)
    expect(admin.post("/admin/v2/resource/", json=ssh), 422)
    ssh["tasks_pixi_config"] = {**PIXI, "SLURM_CONFIG": PIXI_SLURM}
    stored = expect(admin.post("/admin/v2/resource/", json=ssh), 201)
    assert stored["tasks_pixi_config"]["SLURM_CONFIG"]["preamble"] == []
    names = [item["name"] for item in expect(admin.get("/admin/v2/resource/"), 200)]
    assert names == ["cluster", "c2", "c3", "ssh"]


def test_put_resource_replaces_it(api: ApiClient) -> None:
    admin = api.admin
    first = expect(
        admin.post(
            "/admin/v2/resource/",
            json=_slurm_resource(prevent_new_submissions=True, tasks_pixi_config=PIXI),
        ),
        201,
    )
    rid = first["id"]
    url = f"/admin/v2/resource/{rid}/"
    # Fields left out take their defaults, as on POST; extra fields are ignored.
    body = _slurm_resource(name="renamed", jobs_poll_interval=0, id=123)
    replaced = expect(admin.request("PUT", url, json=body), 200)
    assert replaced["id"] == rid and replaced["name"] == "renamed"
    assert replaced["prevent_new_submissions"] is False and replaced["tasks_pixi_config"] == {}
    assert replaced["jobs_poll_interval"] == 0
    assert replaced["timestamp_created"] == first["timestamp_created"]
    assert expect(admin.get(url), 200) == replaced
    # What GET shows can be PUT back as it is (tasks_python_config {} means none).
    assert expect(admin.request("PUT", url, json=replaced), 200) == replaced
    # The same checks as POST; nothing is changed by a refused body.
    expect(admin.request("PUT", url, json=_slurm_resource(jobs_runner_config={})), 422)
    expect(admin.request("PUT", url, json=_slurm_resource(tasks_local_dir="tasks")), 422)
    expect(admin.request("PUT", url, json={"name": "x"}), 422)
    other = expect(admin.post("/admin/v2/resource/", json=_slurm_resource(name="other")), 201)
    expect(admin.request("PUT", url, json=_slurm_resource(name="other")), 422)  # name taken
    assert expect(admin.get(url), 200) == replaced
    expect(admin.request("PUT", "/admin/v2/resource/999/", json=body), 404)
    expect(admin.request("PUT", "/admin/v2/resource/0/", json=body), 422)
    # The type may change while no profile depends on it, not after.
    local = {
        "name": "now-local",
        "type": "local",
        "jobs_local_dir": "/srv/jobs",
        "tasks_local_dir": "/srv/tasks",
        "jobs_runner_config": {},
    }
    assert (
        expect(admin.request("PUT", f"/admin/v2/resource/{other['id']}/", json=local), 200)["type"]
        == "local"
    )
    expect(admin.post(f"{url}profile/", json={"name": "p", "username": "alice"}), 201)
    expect(admin.request("PUT", url, json={**local, "name": "renamed"}), 422)
    assert expect(admin.get(url), 200)["type"] == "slurm_sudo"
    # Superusers only.
    user = api.new_user()
    expect(user.request("PUT", url, json=body), 403)
    expect(api.client.put(url, json=body), 401)


def test_profile_bodies_and_put(api: ApiClient) -> None:
    admin = api.admin
    sudo = expect(admin.post("/admin/v2/resource/", json=_slurm_resource()), 201)
    ssh = expect(
        admin.post(
            "/admin/v2/resource/",
            json=_slurm_resource(name="ssh", type="slurm_ssh", host="login.example.org"),
        ),
        201,
    )
    # The fractal client's fixtures send the resource's id in the body: ignored.
    body = {"name": "p", "resource_type": "slurm_sudo", "username": "alice", "resource_id": 77}
    profile = expect(admin.post(f"/admin/v2/resource/{sudo['id']}/profile/", json=body), 201)
    assert profile["resource_id"] == sudo["id"] and profile["pixi_cache_dir"] is None
    # pixi_cache_dir: only for slurm_ssh profiles, as in Fractal.
    ssh_body = {
        "name": "q",
        "resource_type": "slurm_ssh",
        "username": "bob",
        "ssh_key_path": "/keys/bob",
        "jobs_remote_dir": "/remote/jobs",
        "tasks_remote_dir": "/remote/tasks",
        "pixi_cache_dir": "/remote/pixi-cache",
    }
    ssh_profile = expect(admin.post(f"/admin/v2/resource/{ssh['id']}/profile/", json=ssh_body), 201)
    assert ssh_profile["pixi_cache_dir"] == "/remote/pixi-cache"
    url = f"/admin/v2/profile/{profile['id']}/"
    expect(admin.request("PUT", url, json={**body, "pixi_cache_dir": "/cache"}), 422)
    expect(admin.patch(url, json={"pixi_cache_dir": "/cache"}), 422)
    expect(admin.request("PUT", url, json={**body, "pixi_cache_dir": "relative"}), 422)

    # PUT replaces the whole profile; its resource stays.
    replaced = expect(
        admin.request("PUT", url, json={"name": "p2", "username": "carol", "resource_id": 5}),
        200,
    )
    assert replaced["name"] == "p2" and replaced["username"] == "carol"
    assert replaced["resource_id"] == sudo["id"] and replaced["resource_type"] == "slurm_sudo"
    assert expect(admin.get(url), 200) == replaced
    expect(admin.request("PUT", url, json={"name": "p2"}), 422)  # slurm needs a username
    expect(admin.request("PUT", url, json={"name": "p2", "username": "Bad User"}), 422)
    wrong_type = {"name": "p2", "username": "carol", "resource_type": "local"}
    expect(admin.request("PUT", url, json=wrong_type), 422)
    expect(admin.request("PUT", url, json={"name": "q", "username": "carol"}), 422)  # taken
    assert expect(admin.get(url), 200) == replaced
    ssh_url = f"/admin/v2/profile/{ssh_profile['id']}/"
    expect(admin.request("PUT", ssh_url, json={**ssh_body, "ssh_key_path": None}), 422)
    cleared = expect(admin.request("PUT", ssh_url, json={**ssh_body, "pixi_cache_dir": None}), 200)
    assert cleared["pixi_cache_dir"] is None
    expect(admin.request("PUT", "/admin/v2/profile/999/", json=body), 404)
    user = api.new_user()
    expect(user.request("PUT", url, json=body), 403)
    expect(api.client.put(url, json=body), 401)
