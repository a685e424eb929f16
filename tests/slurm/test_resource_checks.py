"""Setup checks of a SLURM resource, on the real cluster: what passes, what fails and says
how to fix it, through the admin route and `fractal-like resource check ID`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fractal_like.cli import app
from fractal_like.config import Settings

from ..support.helpers import ApiClient, expect
from ..support.slurm_scene import cleanup, slurm_config, slurm_scene
from ..support.slurm_support import shared_dir

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


def test_a_broken_resource_is_told_what_to_fix(
    api: ApiClient, slurm_conf: str, slurm_user: tuple[str, int, int]
) -> None:
    root = shared_dir("checks-broken")
    config = slurm_config()
    config["default_slurm_config"]["partition"] = "no-such-partition"
    resource = expect(
        api.admin.post(
            "/admin/v2/resource/",
            json={
                "name": f"broken-{root.name}",
                "type": "slurm_sudo",
                "jobs_local_dir": str(root / "jobs"),
                "tasks_local_dir": str(root / "tasks"),
                "jobs_runner_config": config,
                "jobs_slurm_python_worker": "/no/such/python3",
            },
        ),
        201,
    )
    profile = expect(
        api.admin.post(
            f"/admin/v2/resource/{resource['id']}/profile/",
            json={
                "name": f"broken-profile-{root.name}",
                "resource_type": "slurm_sudo",
                "username": slurm_user[0],
                "jobs_remote_dir": "/root",  # not the user's
            },
        ),
        201,
    )
    checks = _checks(api, resource["id"])
    name = f"profile {profile['name']!r}"
    assert checks["SLURM_CONF"]["ok"] and checks["SLURM commands"]["ok"]
    partitions = checks["partitions"]
    assert (
        not partitions["ok"]
        and "SLURM has no partition 'no-such-partition'" in (partitions["message"])
    )
    python = checks[f"{name}: worker Python"]
    assert not python["ok"]
    assert f"{slurm_user[0]} cannot run /no/such/python3" in python["message"]
    folder = checks[f"{name}: jobs folder"]
    assert not folder["ok"] and f"{slurm_user[0]} cannot write /root" in folder["message"]
    assert expect(api.admin.get("/admin/v2/resource/"), 200)  # nothing else changed
    local = expect(
        api.admin.post(
            "/admin/v2/resource/",
            json={
                "name": f"local-{root.name}",
                "type": "local",
                "jobs_local_dir": str(root / "l-jobs"),
                "tasks_local_dir": str(root / "l-tasks"),
            },
        ),
        201,
    )
    assert _checks(api, local["id"]) == {}
    stranger = api.new_user()
    assert stranger.get(f"/admin/v2/resource/{resource['id']}/check/").status_code == 403
