"""Setup checks of a SLURM resource, on the real cluster: what passes, what fails and says
how to fix it, through the admin route and `fractal-like resource check ID`, and the same
checks refusing a resource or profile when it is saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fractal_like.cli import app
from fractal_like.config import Settings

from ..support.helpers import ApiClient, expect
from ..support.slurm_scene import cleanup, slurm_config, slurm_scene
from ..support.slurm_support import remove_shared_dir, shared_dir, user_owned_dir
from ..support.ssh_support import SshServer, make_key

ONE_DATABASE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _checks(api: ApiClient, resource_id: int) -> dict[str, dict]:
    found = expect(api.admin.get(f"/admin/v2/resource/{resource_id}/check/"), 200)
    return {check["name"]: check for check in found}


@ONE_DATABASE
def test_a_working_resource_passes_every_check(
    api: ApiClient,
    slurm_conf: str,
    slurm_user: tuple[str, int, int],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scene = slurm_scene(api, slurm_user)
    try:
        profile_id = scene.user.user["profile_id"]
        profile = expect(api.admin.get(f"/admin/v2/profile/{profile_id}/"), 200)
        checks = _checks(api, profile["resource_id"])
        assert all(check["ok"] for check in checks.values()), checks
        name = f"profile {profile['name']!r}"
        assert set(checks) == {
            "SLURM_CONF",
            "SLURM commands",
            "partitions",
            "worker Python",
            f"{name}: sudo",
            f"{name}: worker Python",
            f"{name}: jobs folder",
        }
        assert checks[f"{name}: worker Python"]["message"].startswith("/usr/bin/python3 runs")

        monkeypatch.setenv("FRACTAL_LIKE_DB_URL", settings.database_url)
        monkeypatch.setenv("FRACTAL_LIKE_DATA_DIR", str(settings.DATA_DIR))
        monkeypatch.setenv("FRACTAL_LIKE_JWT_SECRET", settings.JWT_SECRET)
        result = CliRunner().invoke(app, ["resource", "check", str(profile["resource_id"])])
        assert result.exit_code == 0, result.output
        assert "ok   partitions: SLURM knows main" in result.output
        missing = CliRunner().invoke(app, ["resource", "check", "999999"])
        assert missing.exit_code == 1 and "resource 999999 not found" in missing.output
    finally:
        cleanup(scene)


def _resource(root: Path, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"checked-{root.name}",
        "type": "slurm_sudo",
        "jobs_local_dir": str(root / "jobs"),
        "tasks_local_dir": str(root / "tasks"),
        "jobs_runner_config": slurm_config(),
        "jobs_slurm_python_worker": "/usr/bin/python3",
    }
    return {**body, **overrides}


def _profile(root: Path, user: str, **overrides: Any) -> dict[str, Any]:
    body = {"name": f"checked-{root.name}", "username": user}
    if "jobs_remote_dir" not in overrides:
        body["jobs_remote_dir"] = str(user_owned_dir(root / "user-jobs", user))
    return {**body, **overrides}


def _refusal(response: Any) -> str:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "was not saved, because jobs could not run" in detail
    return detail


@pytest.fixture
def root(slurm_conf: str) -> Any:
    path = shared_dir("checks")
    yield path
    remove_shared_dir(path)


@ONE_DATABASE
def test_a_wrong_partition_is_refused_when_saved(api: ApiClient, root: Path) -> None:
    admin = api.admin
    config = slurm_config()
    config["default_slurm_config"]["partition"] = "no-such-partition"
    config["gpu_slurm_config"] = {"partition": "gpu", "gres": "gpu:1"}
    detail = _refusal(
        admin.post("/admin/v2/resource/", json=_resource(root, jobs_runner_config=config))
    )
    assert (
        "partitions: SLURM has no partition 'gpu', 'no-such-partition' (it has main): fix the "
        "partition in jobs_runner_config" in detail
    )
    assert expect(admin.get("/admin/v2/resource/"), 200) == []  # nothing was saved

    resource = expect(admin.post("/admin/v2/resource/", json=_resource(root)), 201)
    url = f"/admin/v2/resource/{resource['id']}/"
    detail = _refusal(admin.patch(url, json={"jobs_runner_config": config}))
    assert "SLURM has no partition 'gpu', 'no-such-partition'" in detail
    detail = _refusal(admin.request("PUT", url, json=_resource(root, jobs_runner_config=config)))
    assert "SLURM has no partition" in detail
    kept = expect(admin.get(url), 200)["jobs_runner_config"]["default_slurm_config"]
    assert kept["partition"] == "main"


@ONE_DATABASE
def test_an_unreadable_or_missing_worker_python_is_refused_when_saved(
    api: ApiClient, root: Path, slurm_user: tuple[str, int, int]
) -> None:
    admin, user = api.admin, slurm_user[0]
    detail = _refusal(
        admin.post(
            "/admin/v2/resource/", json=_resource(root, jobs_slurm_python_worker="/no/python3")
        )
    )
    assert "worker Python: the worker Python /no/python3 does not exist on this machine" in detail

    # Present for the server (root), unreadable for the cluster user: a folder only root
    # may enter, as the server's own home would be.
    private = root / "private"
    private.mkdir(mode=0o700)
    hidden = private / "python3"
    hidden.symlink_to("/usr/bin/python3")
    resource = expect(
        admin.post(
            "/admin/v2/resource/", json=_resource(root, jobs_slurm_python_worker=str(hidden))
        ),
        201,
    )
    profiles = f"/admin/v2/resource/{resource['id']}/profile/"
    detail = _refusal(admin.post(profiles, json=_profile(root, user)))
    assert f"profile 'checked-{root.name}' was not saved" in detail
    assert f"worker Python: {user} cannot run {hidden} (" in detail
    assert "Permission denied" in detail
    assert "install Python there, or name one that user can read and run" in detail
    assert expect(admin.get(profiles), 200) == []

    # The other way round: the profile exists, then the resource changes its Python.
    url = f"/admin/v2/resource/{resource['id']}/"
    expect(admin.patch(url, json={"jobs_slurm_python_worker": "/usr/bin/python3"}), 200)
    profile = expect(admin.post(profiles, json=_profile(root, user)), 201)
    detail = _refusal(admin.patch(url, json={"jobs_slurm_python_worker": str(hidden)}))
    assert f"resource 'checked-{root.name}' was not saved" in detail
    assert f"profile {profile['name']!r}: worker Python: {user} cannot run {hidden}" in detail
    assert expect(admin.get(url), 200)["jobs_slurm_python_worker"] == "/usr/bin/python3"


@ONE_DATABASE
def test_a_missing_slurm_conf_is_refused_when_saved(
    api: ApiClient, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = api.admin
    resource = expect(admin.post("/admin/v2/resource/", json=_resource(root)), 201)
    url = f"/admin/v2/resource/{resource['id']}/"
    monkeypatch.setenv("SLURM_CONF", str(root / "no-slurm.conf"))  # the server's environment
    detail = _refusal(admin.post("/admin/v2/resource/", json=_resource(root, name="other")))
    assert (
        f"SLURM_CONF: SLURM_CONF names {root}/no-slurm.conf, which is not a file the server "
        "can read: point it at the cluster's slurm.conf" in detail
    )
    _refusal(admin.patch(url, json={"jobs_local_dir": str(root / "elsewhere")}))
    # What the checks do not read is saved regardless: a resource can be closed to new jobs
    # (or renamed) while its cluster is out of reach.
    closed = expect(admin.patch(url, json={"prevent_new_submissions": True, "name": "x"}), 200)
    assert closed["prevent_new_submissions"] and closed["name"] == "x"


@ONE_DATABASE
def test_a_jobs_folder_the_user_cannot_write_is_refused_when_saved(
    api: ApiClient, root: Path, slurm_user: tuple[str, int, int]
) -> None:
    admin, user = api.admin, slurm_user[0]
    resource = expect(admin.post("/admin/v2/resource/", json=_resource(root)), 201)
    profiles = f"/admin/v2/resource/{resource['id']}/profile/"
    detail = _refusal(admin.post(profiles, json=_profile(root, user, jobs_remote_dir="/root")))
    assert f"jobs folder: {user} cannot write /root (jobs_remote_dir)" in detail
    # Without jobs_remote_dir, the resource's jobs_local_dir (root's, here) is the folder.
    (root / "jobs").mkdir(mode=0o755)
    detail = _refusal(admin.post(profiles, json=_profile(root, user, jobs_remote_dir=None)))
    assert f"{user} cannot write {root}/jobs (no jobs_remote_dir, so jobs_local_dir)" in detail
    detail = _refusal(
        admin.post(profiles, json=_profile(root, "fl-no-such-user", jobs_remote_dir="/tmp"))
    )
    assert "sudo: the server cannot run commands as 'fl-no-such-user'" in detail
    profile = expect(admin.post(profiles, json=_profile(root, user)), 201)
    url = f"/admin/v2/profile/{profile['id']}/"
    _refusal(admin.patch(url, json={"jobs_remote_dir": "/root"}))
    _refusal(admin.request("PUT", url, json=_profile(root, user, jobs_remote_dir="/root")))
    assert expect(admin.patch(url, json={"name": "renamed"}), 200)["name"] == "renamed"
    assert expect(admin.get(url), 200)["jobs_remote_dir"] == str(root / "user-jobs")


@ONE_DATABASE
def test_a_cluster_that_does_not_answer_does_not_block_a_save(
    api: ApiClient, root: Path, slurm_conf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same cluster, its controller at a port nobody listens on: SLURM is down.
    down = root / "down.conf"
    lines = Path(slurm_conf).read_text().splitlines()
    down.write_text(
        "\n".join(
            "SlurmctldPort=1" if line.startswith("SlurmctldPort=") else line for line in lines
        )
    )
    monkeypatch.setenv("SLURM_CONF", str(down))
    resource = expect(api.admin.post("/admin/v2/resource/", json=_resource(root)), 201)
    checks = _checks(api, resource["id"])
    partitions = checks["partitions"]
    assert not partitions["ok"] and partitions["inconclusive"], partitions
    assert "Unable to contact slurm controller" in partitions["message"] or (
        "did not answer" in partitions["message"]
    )


def test_a_local_resource_runs_no_checks(api: ApiClient, tmp_path: Path) -> None:
    local = expect(
        api.admin.post(
            "/admin/v2/resource/",
            json={
                "name": "local-unchecked",
                "type": "local",
                "jobs_local_dir": str(tmp_path / "no-such-jobs"),
                "tasks_local_dir": str(tmp_path / "no-such-tasks"),
            },
        ),
        201,
    )
    assert _checks(api, local["id"]) == {}
    stranger = api.new_user()
    assert stranger.get(f"/admin/v2/resource/{local['id']}/check/").status_code == 403


@ONE_DATABASE
def test_a_slurm_ssh_resource_is_checked_on_its_login_node(
    api: ApiClient,
    slurm_user: tuple[str, int, int],
    ssh_server: SshServer,
    tmp_path: Path,
) -> None:
    admin = api.admin
    scene = slurm_scene(api, slurm_user, ssh=ssh_server)
    try:
        profile = expect(admin.get(f"/admin/v2/profile/{scene.user.user['profile_id']}/"), 200)
        resource_id = profile["resource_id"]
        checks = _checks(api, resource_id)
        name = f"profile {profile['name']!r}"
        # No server-side check: the login node's SLURM is asked, over SSH.
        assert set(checks) == {
            f"{name}: SSH login",
            "partitions",
            f"{name}: worker Python",
            f"{name}: jobs folder",
        }
        assert all(check["ok"] for check in checks.values()), checks
        assert "logged in to fl-slurm-alice@127.0.0.1" in checks[f"{name}: SSH login"]["message"]

        url = f"/admin/v2/resource/{resource_id}/"
        config = expect(admin.get(url), 200)["jobs_runner_config"]
        wrong = {**config, "default_slurm_config": {**config["default_slurm_config"]}}
        wrong["default_slurm_config"]["partition"] = "no-such-partition"
        detail = _refusal(admin.patch(url, json={"jobs_runner_config": wrong}))
        assert "SLURM has no partition 'no-such-partition'" in detail

        stranger = make_key(tmp_path / "stranger")
        patch = {"ssh_key_path": str(stranger)}
        detail = _refusal(admin.patch(f"/admin/v2/profile/{profile['id']}/", json=patch))
        assert f"SSH login: 127.0.0.1:{ssh_server.port} refused the SSH key {stranger}" in detail
    finally:
        cleanup(scene)
