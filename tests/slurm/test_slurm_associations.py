"""SLURM accounts checked against the cluster's associations (sacctmgr), when they are
set and at submit; the user's view of what they may charge."""

from __future__ import annotations

import itertools
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from ..support.helpers import ApiClient, expect
from ..support.runner_support import build_workflow
from ..support.slurm_scene import cleanup, slurm_config, slurm_scene
from ..support.slurm_support import associate, slurm_env
from ..support.ssh_support import key_refused_after_save

_numbers = itertools.count(1)


def _sacctmgr(*words: str) -> None:
    subprocess.run(["sacctmgr", "-i", *words], env=slurm_env(), capture_output=True, check=True)


@pytest.mark.parametrize("transport", ["slurm_sudo", "slurm_ssh"])
def test_accounts_are_checked_against_slurm_associations(
    api: ApiClient,
    slurm_accounting: str,
    slurm_user: tuple[str, int, int],
    transport: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    cluster_user = slurm_user[0]
    number = next(_numbers)
    known, other, unknown = (f"fl-assoc-{number}", f"fl-assoc-{number}b", f"fl-none-{number}")
    associate(cluster_user, [known, other])
    # On slurm_ssh, sacctmgr and sshare run on the login node.
    ssh = request.getfixturevalue("ssh_server") if transport == "slurm_ssh" else None
    scene = slurm_scene(api, slurm_user, ssh=ssh)
    try:
        user_id = scene.user.id
        # An admin sets accounts: one SLURM does not associate with the user is refused.
        refused = expect(
            api.admin.patch(f"/auth/users/{user_id}/", json={"slurm_accounts": [known, unknown]}),
            422,
        )["detail"]
        assert f"SLURM account {unknown!r} is not associated with cluster user" in refused
        assert repr(cluster_user) in refused and known in refused
        expect(api.admin.patch(f"/auth/users/{user_id}/", json={"slurm_accounts": [known]}), 200)
        # The user sets their own: the same rule.
        own = expect(
            scene.user.patch("/auth/current-user/", json={"slurm_accounts": [unknown]}), 422
        )
        assert unknown in own["detail"]
        expect(
            scene.user.patch("/auth/current-user/", json={"slurm_accounts": [known, other]}), 200
        )

        view = expect(scene.user.get("/api/v2/slurm/associations/"), 200)
        assert view["cluster_user"] == cluster_user and view["checked"] is True
        assert {known, other} <= {entry["account"] for entry in view["associations"]}
        assert all("normal" in entry["qos"] for entry in view["associations"])
        assert {known, other} <= {entry["account"] for entry in view["fair_share"]}

        # SLURM's associations change under us: the submit checks again.
        _sacctmgr("remove", "user", cluster_user, f"accounts={other}")
        workflow = build_workflow(
            scene.user, scene.project["id"], [(scene.tasks["create_images"], {})]
        )
        url = (
            f"/api/v2/project/{scene.project['id']}/job/submit/"
            f"?workflow_id={workflow['id']}&dataset_id={scene.dataset['id']}"
        )
        body: dict[str, Any] = {"slurm_account": other}
        detail = expect(scene.user.post(url, json=body), 422)["detail"]
        assert f"SLURM account {other!r} is not associated" in detail
        expect(scene.user.post(url, json={"slurm_account": known}), 202)
        if ssh is not None:
            # The login node stops letting the key in: the view says it could not ask.
            key, break_it = key_refused_after_save(ssh, tmp_path / "alice-key")
            profile_id = scene.user.user["profile_id"]
            patch = {"ssh_key_path": str(key)}
            expect(api.admin.patch(f"/admin/v2/profile/{profile_id}/", json=patch), 200)
            break_it()
            ssh.drop_connections()
            view = expect(scene.user.get("/api/v2/slurm/associations/"), 200)
            assert view["checked"] is False and "refused the SSH key" in view["note"]
    finally:
        cleanup(scene)


def test_users_off_slurm_see_why_nothing_is_listed(api: ApiClient) -> None:
    local = api.new_user()
    view = expect(local.get("/api/v2/slurm/associations/"), 200)
    assert view == {
        "cluster_user": None,
        "checked": False,
        "note": "your profile is not on a SLURM resource",
        "associations": [],
        "fair_share": [],
    }
    assert api.client.get("/api/v2/slurm/associations/").status_code == 401


def test_a_submit_over_an_association_limit_is_refused_in_words(
    api: ApiClient, slurm_accounting: str, slurm_user: tuple[str, int, int]
) -> None:
    cluster_user = slurm_user[0]
    account = f"fl-limits-{next(_numbers)}-{uuid.uuid4().hex[:6]}"  # ours alone: others' kept
    scene = slurm_scene(
        api, slurm_user, config=slurm_config(max_cpus_per_job=4), slurm_accounts=[account]
    )
    try:
        _sacctmgr(
            "modify", "user", "where", f"name={cluster_user}", f"account={account}",
            "set", "MaxWall=00:05:00", "MaxSubmitJobs=2", "MaxTRES=cpu=2",
        )  # fmt: skip
        # The user sees the limits and their fair-share before submitting.
        view = expect(scene.user.get("/api/v2/slurm/associations/"), 200)
        limits = next(entry for entry in view["associations"] if entry["account"] == account)
        assert limits["max_wall"] == "00:05:00" and limits["max_submit_jobs"] == 2
        assert "cpu=2" in limits["max_tres"]
        assert account in {entry["account"] for entry in view["fair_share"]}

        project, dataset = scene.project["id"], scene.dataset["id"]
        for number in range(3):
            image = {"zarr_url": f"{scene.dataset['zarr_dir']}/plate.zarr/B/03/{number}"}
            expect(
                scene.user.post(f"/api/v2/project/{project}/dataset/{dataset}/images/", json=image),
                201,
            )
        who = f"account {account!r} of cluster user {cluster_user!r}"

        def submit(meta: dict[str, Any]) -> Any:
            workflow = build_workflow(
                scene.user, project, [(scene.tasks["measure_intensity"], {"meta_parallel": meta})]
            )
            url = (
                f"/api/v2/project/{project}/job/submit/"
                f"?workflow_id={workflow['id']}&dataset_id={dataset}"
            )
            return scene.user.post(url, json={"slurm_account": account})

        # One image per SLURM job, 3 CPUs and 10 minutes each: three limits broken at once.
        greedy = {"time": "00:10:00", "cpus_per_task": 3, "tasks_per_job": 1}
        detail = expect(submit(greedy), 422)["detail"]
        assert detail.startswith("the job was not submitted: ")
        assert (
            f"task 'measure_intensity' asks for 10 min per SLURM job, over the MaxWall of "
            f"5 min that SLURM sets for {who}" in detail
        )
        assert (
            f"asks for 3 CPUs per SLURM job, over the MaxTRES cpu=2 that SLURM sets for {who}"
            in detail
        )
        assert (
            "would submit 3 SLURM jobs at once, over the MaxSubmitJobs=2 that SLURM sets for "
            f"{who}" in detail
        )
        # Within the limits: 3 images in 2 jobs of 2 CPUs, 4 minutes each.
        expect(submit({"time": "00:04:00"}), 202)
    finally:
        _sacctmgr("remove", "user", cluster_user, f"accounts={account}")
        _sacctmgr("remove", "account", account)
        cleanup(scene)
