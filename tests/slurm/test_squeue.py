"""GET /api/v2/job/squeue/ against the real local SLURM cluster, on SQLite and PostgreSQL.

Two cluster users each have a job waiting in the queue, charged to different accounts;
the scopes must show exactly the jobs Fractal's would.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fractal_like.config import Settings
from fractal_like.models import UserOAuth

from ..support.helpers import ApiClient, UserClient, expect, run_in_session
from ..support.slurm_scene import SlurmScene, cleanup, slurm_scene
from ..support.slurm_support import BOB, ensure_unix_user, run_as, sbatch_as
from ..support.ssh_support import SshServer, key_refused_after_save

HEADER = "JOBID PARTITION NAME USER ACCOUNT STATE TIME NODES CPUS MIN_MEMORY"
_numbers = itertools.count(1)


def _hold_job(user: str, account: str, name: str) -> int:
    # Held, so it stays in the queue whatever the cluster's load, and never runs.
    return sbatch_as(
        user,
        ["--hold", f"--account={account}", f"--job-name={name}", "--partition=main"],
        "#!/bin/sh\nsleep 60\n",
    )


def _squeue(user: UserClient, scope: str | None = None) -> str:
    url = "/api/v2/job/squeue/" + (f"?scope={scope}" if scope else "")
    response = user.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.fixture
def queue(api: ApiClient, slurm_user: tuple[str, int, int]) -> Iterator[tuple[SlurmScene, dict]]:
    """Alice's scene (account fl-sq-a-N) and a held job of hers and one of Bob's (fl-sq-b-N)."""
    number = next(_numbers)
    mine, theirs = f"fl-sq-a-{number}", f"fl-sq-b-{number}"
    scene = slurm_scene(api, slurm_user, slurm_accounts=[mine])
    ensure_unix_user(BOB)
    jobs = {
        "alice": _hold_job(slurm_user[0], mine, f"fl-squeue-alice-{number}"),
        "bob": _hold_job(BOB, theirs, f"fl-squeue-bob-{number}"),
    }
    try:
        yield scene, jobs
    finally:
        run_as(slurm_user[0], ["scancel", str(jobs["alice"])])
        run_as(BOB, ["scancel", str(jobs["bob"])])
        cleanup(scene)


def _ids(text: str) -> set[str]:
    return {line.split()[0] for line in text.splitlines()[1:] if line.strip()}


def test_the_three_scopes_show_the_real_queue(queue: tuple[SlurmScene, dict]) -> None:
    scene, jobs = queue
    alice, bob = str(jobs["alice"]), str(jobs["bob"])

    everything = _squeue(scene.user)
    assert " ".join(everything.split()).startswith(HEADER)
    assert {alice, bob} <= _ids(everything)
    # "all" is the default (other tests' jobs may come and go between two calls).
    assert {alice, bob} <= _ids(_squeue(scene.user, "all"))
    line = next(line for line in everything.splitlines() if line.split()[0] == alice)
    assert "fl-slurm-alice" in line and "PENDING" in line

    own = _squeue(scene.user, "user")
    assert alice in _ids(own) and bob not in _ids(own)

    accounts = _squeue(scene.user, "accounts")
    assert alice in _ids(accounts) and bob not in _ids(accounts)


def test_without_accounts_the_accounts_scope_is_the_whole_queue(
    api: ApiClient, slurm_user: tuple[str, int, int], queue: tuple[SlurmScene, dict]
) -> None:
    _scene, jobs = queue
    other = slurm_scene(api, slurm_user)  # the same cluster user, no SLURM accounts
    try:
        assert {str(jobs["alice"]), str(jobs["bob"])} <= _ids(_squeue(other.user, "accounts"))
    finally:
        cleanup(other)


def test_refusals(
    api: ApiClient, settings: Settings, slurm_user: tuple[str, int, int], slurm_conf: str
) -> None:
    scene = slurm_scene(api, slurm_user, slurm_accounts=["fl-plain"])
    try:
        assert api.client.get("/api/v2/job/squeue/").status_code == 401
        guest = api.new_user(with_profile=False)
        expect(guest.get("/api/v2/job/squeue/"), 403)
        local = api.new_user()
        detail = expect(local.get("/api/v2/job/squeue/"), 422)["detail"]
        assert "not available" in detail and "'local'" in detail
        bad_scope = expect(scene.user.get("/api/v2/job/squeue/?scope=foo"), 422)
        assert bad_scope["detail"][0]["msg"] == "Input should be 'all', 'user' or 'accounts'"

        # An account that would change squeue's arguments is refused, not passed on: the
        # API refuses to store one, but a row written before that check may hold one.
        user_id = scene.user.user["id"]
        patch = {"slurm_accounts": ["fl-plain,other"]}
        expect(api.admin.patch(f"/auth/users/{user_id}/", json=patch), 422)

        async def store(session: Any) -> None:
            user = await session.get(UserOAuth, user_id)
            user.slurm_accounts = ["fl-plain,other"]
            await session.commit()

        run_in_session(settings.database_url, store)
        detail = expect(scene.user.get("/api/v2/job/squeue/?scope=accounts"), 422)["detail"]
        assert "not a plain account name" in detail
        # The other scopes do not use the accounts.
        assert HEADER.split()[0] in _squeue(scene.user, "all")
        # A guest account may not read the queue (as in Fractal).
        expect(api.admin.patch(f"/auth/users/{user_id}/", json={"is_guest": True}), 200)
        assert expect(scene.user.get("/api/v2/job/squeue/"), 403)["detail"].endswith("users.")
    finally:
        cleanup(scene)


def test_a_failing_squeue_is_a_422_in_fractals_words(
    api: ApiClient,
    slurm_user: tuple[str, int, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The one fault a live cluster cannot give on demand: no squeue to run.
    scene = slurm_scene(api, slurm_user)
    try:
        monkeypatch.setenv("PATH", str(tmp_path))
        detail = expect(scene.user.get("/api/v2/job/squeue/?scope=user"), 422)["detail"]
        assert detail == "Error executing squeue command - please retry later."
    finally:
        cleanup(scene)


def test_a_slurm_ssh_users_queue_is_read_on_the_login_node(
    api: ApiClient,
    slurm_user: tuple[str, int, int],
    ssh_server: SshServer,
    queue: tuple[SlurmScene, dict],
    tmp_path: Path,
) -> None:
    _scene, jobs = queue
    scene = slurm_scene(api, slurm_user, ssh=ssh_server)
    try:
        sessions_before = ssh_server.log().count("Accepted publickey")
        own = _squeue(scene.user, "user")
        assert " ".join(own.split()).startswith(HEADER)
        assert str(jobs["alice"]) in _ids(own) and str(jobs["bob"]) not in _ids(own)
        # The API's kept connection (opened by the profile's setup checks, or now) serves.
        logins = ssh_server.log().count("Accepted publickey")
        assert logins <= sessions_before + 1
        _squeue(scene.user, "all")  # the same connection again
        assert ssh_server.log().count("Accepted publickey") == logins
        # A key the login node refuses: Fractal's words, not a 500 and not a hang.
        profile_id = scene.user.user["profile_id"]
        key, break_it = key_refused_after_save(ssh_server, tmp_path / "alice-key")
        patch = {"ssh_key_path": str(key)}
        expect(api.admin.patch(f"/admin/v2/profile/{profile_id}/", json=patch), 200)
        break_it()
        ssh_server.drop_connections()  # the one the save's checks opened with the good key
        detail = expect(scene.user.get("/api/v2/job/squeue/?scope=user"), 422)["detail"]
        assert detail == "Error executing squeue command - please retry later."
    finally:
        cleanup(scene)
