"""The users table as CSV, and impersonation, under /admin/v2/ (superusers only)."""

from __future__ import annotations

import csv
import io

from ..support.helpers import (
    ADMIN_EMAIL,
    ApiClient,
    expect,
    make_dataset,
    make_project,
    make_task,
    make_workflow,
)

CSV = "/admin/v2/users-csv/"
COLUMNS = [
    "id",
    "email",
    "slurm_username",
    "slurm_accounts",
    "project_dirs",
    "user_groups",
    "num_jobs",
]


def _table(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == "attachment"
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]


def test_users_csv(api: ApiClient) -> None:
    admin = api.admin
    runner = api.new_user(slurm_accounts=["lab-a", "lab-b"])
    idle = api.new_user(with_profile=False)
    group = expect(admin.post("/auth/group/", json={"name": "imaging"}), 201)
    expect(
        admin.post(f"/auth/users/{runner.id}/set-groups/", json={"group_ids": [group["id"]]}), 200
    )
    project = make_project(runner)
    dataset = make_dataset(runner, project["id"])
    workflow = make_workflow(runner, project["id"], [make_task(runner)["id"]])
    submit = (
        f"/api/v2/project/{project['id']}/job/submit/"
        f"?workflow_id={workflow['id']}&dataset_id={dataset['id']}"
    )
    job = expect(runner.post(submit, json={}), 202)

    rows = {row["email"]: row for row in _table(admin.get(CSV))}
    assert list(rows) == sorted(rows) and set(rows) >= {ADMIN_EMAIL, runner.user["email"]}
    mine = rows[runner.user["email"]]
    assert mine["id"] == str(runner.id) and mine["slurm_username"] == ""
    assert mine["slurm_accounts"] == "lab-a|lab-b"
    assert mine["project_dirs"] == "|".join(runner.user["project_dirs"])
    assert mine["user_groups"] == "All|imaging" and mine["num_jobs"] == "1"
    assert rows[idle.user["email"]]["num_jobs"] == "0"

    busy = _table(admin.get(CSV, params={"exclude_zero_jobs": True}))
    assert [row["email"] for row in busy] == [runner.user["email"]]
    started = job["start_timestamp"]
    since = _table(admin.get(CSV, params={"start_timestamp_min": started}))
    assert {row["email"]: row["num_jobs"] for row in since}[runner.user["email"]] == "1"
    later = _table(
        admin.get(
            CSV,
            params={"exclude_zero_jobs": True, "start_timestamp_min": "2999-01-01T00:00:00Z"},
        )
    )
    assert later == []
    before = _table(
        admin.get(CSV, params={"exclude_zero_jobs": True, "start_timestamp_max": started})
    )
    assert [row["email"] for row in before] == [runner.user["email"]]
    for bad in (
        {"start_timestamp_min": "2024-01-01T00:00:00"},  # no offset: ambiguous
        {"start_timestamp_max": "0001-01-01T00:00:00+05:00"},  # before year 1 in UTC
        {"exclude_zero_jobs": "perhaps"},
    ):
        expect(admin.get(CSV, params=bad), 422)
    expect(runner.get(CSV), 403)
    expect(api.client.get(CSV), 401)


def test_impersonate(api: ApiClient) -> None:
    admin = api.admin
    user = api.new_user()
    answer = expect(admin.get(f"/admin/v2/impersonate/{user.id}/"), 200)
    assert answer["token_type"] == "bearer"
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    me = expect(api.client.get("/auth/current-user/", headers=headers), 200)
    assert me["id"] == user.id and me["email"] == user.user["email"]
    expect(api.client.get("/auth/users/", headers=headers), 403)  # the user's rights only
    # Bound to the password like every token: a new password ends it.
    expect(admin.patch(f"/auth/users/{user.id}/", json={"password": "another-password"}), 200)
    expect(api.client.get("/auth/current-user/", headers=headers), 401)
    expect(admin.get("/admin/v2/impersonate/9999/"), 404)
    expect(admin.get("/admin/v2/impersonate/0/"), 422)
    other = api.new_user()
    expect(other.get(f"/admin/v2/impersonate/{user.id}/"), 403)
    expect(api.client.get(f"/admin/v2/impersonate/{user.id}/"), 401)
