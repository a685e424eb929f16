"""Job submission: checks, snapshots, one active job per dataset, list, show, stop, download."""

from __future__ import annotations

import io
import zipfile

from ..support.helpers import (
    ApiClient,
    expect,
    make_dataset,
    make_project,
    make_task,
    make_workflow,
)


def _setup(api: ApiClient, **user_options):
    user = api.new_user(**user_options)
    project = make_project(user)
    dataset = make_dataset(user, project["id"])
    converter = make_task(
        user, "convert", command_non_parallel="/bin/true", type="converter_non_parallel"
    )
    parallel = make_task(user, "measure")
    workflow = make_workflow(user, project["id"], [converter["id"], parallel["id"]])
    return user, project, dataset, workflow


def _submit_url(project: dict, workflow: dict, dataset: dict) -> str:
    return (
        f"/api/v2/project/{project['id']}/job/submit/"
        f"?workflow_id={workflow['id']}&dataset_id={dataset['id']}"
    )


def test_submit_show_list(api: ApiClient) -> None:
    user, project, dataset, workflow = _setup(api, slurm_accounts=["lab-a", "lab-b"])
    url = _submit_url(project, workflow, dataset)
    job = expect(user.post(url, json={"type_filters": {"is_3D": True}}), 202)
    assert job["status"] == "submitted"
    assert (job["first_task_index"], job["last_task_index"]) == (0, 1)
    assert job["slurm_account"] == "lab-a"
    assert job["project_dump"]["name"] == project["name"]
    assert job["workflow_dump"]["id"] == workflow["id"]
    assert job["dataset_dump"]["zarr_dir"] == dataset["zarr_dir"]
    assert job["user_email"] == user.user["email"]
    assert job["working_dir"] and "job_" in job["working_dir"]

    # Snapshots do not follow later edits.
    expect(user.patch(f"/api/v2/project/{project['id']}/", json={"name": "renamed"}), 200)
    shown = expect(user.get(f"/api/v2/project/{project['id']}/job/{job['id']}/"), 200)
    assert shown["project_dump"]["name"] == project["name"]

    # One active job per dataset.
    again = expect(user.post(url, json={}), 422)
    assert "already has an active job" in again["detail"]
    listed = expect(user.get(f"/api/v2/project/{project['id']}/job/"), 200)
    assert [item["id"] for item in listed] == [job["id"]]
    assert [item["id"] for item in expect(user.get("/api/v2/job/"), 200)] == [job["id"]]


def test_submit_validation(api: ApiClient) -> None:
    user, project, dataset, workflow = _setup(api, slurm_accounts=["lab-a"])
    url = _submit_url(project, workflow, dataset)
    expect(user.post(url, json={"first_task_index": 2}), 422)
    expect(user.post(url, json={"first_task_index": 1, "last_task_index": 0}), 422)
    expect(user.post(url, json={"last_task_index": -1}), 422)
    expect(user.post(url, json={"slurm_account": "not-mine"}), 422)
    expect(user.post(url, json={"worker_init": "x" * 5000}), 422)
    expect(user.post(url, json={"unknown": True}), 422)
    expect(user.post(url, json={"attribute_filters": {"well": "A01"}}), 422)
    empty = make_workflow(user, project["id"], [], name="empty")
    expect(user.post(_submit_url(project, empty, dataset), json={}), 422)
    other_project = make_project(user, "other")
    foreign = make_dataset(user, other_project["id"], "foreign")
    expect(user.post(_submit_url(project, workflow, foreign), json={}), 422)
    stranger = api.new_user()
    expect(stranger.post(url, json={}), 403)
    expect(api.client.post(url, json={}), 401)
    job = expect(user.post(url, json={"first_task_index": 1, "slurm_account": "lab-a"}), 202)
    assert (job["first_task_index"], job["last_task_index"]) == (1, 1)


def test_read_only_guest_cannot_submit(api: ApiClient) -> None:
    owner, project, dataset, workflow = _setup(api)
    guest = api.new_user()
    expect(
        owner.post(
            f"/api/v2/project/{project['id']}/access/",
            json={"email": guest.user["email"], "permissions": "rw"},
        ),
        201,
    )
    expect(guest.get(f"/api/v2/project/{project['id']}/"), 200)
    expect(guest.post(_submit_url(project, workflow, dataset), json={}), 403)


def test_stop_and_download(api: ApiClient) -> None:
    user, project, dataset, workflow = _setup(api)
    job = expect(user.post(_submit_url(project, workflow, dataset), json={}), 202)
    base = f"/api/v2/project/{project['id']}/job/{job['id']}/"
    stopped = expect(user.get(base + "stop/"), 202)
    assert stopped["status"] == "failed" and "stopped by user" in stopped["log"]
    expect(user.get(base + "stop/"), 422)
    response = user.get(base + "download/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-zip-compressed"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
    # The dataset is free again once the job has ended.
    expect(user.post(_submit_url(project, workflow, dataset), json={}), 202)
    expect(api.new_user().get(base), 403)
    expect(user.get(f"/api/v2/project/{project['id']}/job/9999/"), 404)


def test_task_groups_of_another_resource_are_refused_at_submit(api: ApiClient) -> None:
    user, project, dataset, workflow = _setup(api)
    folder = api.tmp_path / "other-resource"
    other = expect(
        api.admin.post(
            "/admin/v2/resource/",
            json={
                "name": "other-local",
                "type": "local",
                "jobs_local_dir": str(folder / "jobs"),
                "tasks_local_dir": str(folder / "tasks"),
            },
        ),
        201,
    )
    profile = expect(
        api.admin.post(
            f"/admin/v2/resource/{other['id']}/profile/",
            json={"name": "other-local-profile", "resource_type": "local"},
        ),
        201,
    )
    # The user moves to another resource; their tasks were registered for the first one.
    expect(api.admin.patch(f"/auth/users/{user.id}/", json={"profile_id": profile["id"]}), 200)
    detail = expect(user.post(_submit_url(project, workflow, dataset), json={}), 422)["detail"]
    assert "task 'convert' belongs to task group" in detail
    assert "collected for another resource than yours ('other-local')" in detail


def test_worker_init_lines_outside_the_accepted_forms_are_refused_by_line(
    api: ApiClient,
) -> None:
    user, project, dataset, workflow = _setup(api)
    url = _submit_url(project, workflow, dataset)
    for text, line in [
        ("export A=1\nrm -rf /tmp/x", "worker_init line 2 ('rm -rf /tmp/x')"),
        ("export A=$(id)", "worker_init line 1 ('export A=$(id)')"),
        ("# fine\n\nsource ~/.bashrc", "worker_init line 3 ('source ~/.bashrc')"),
        ("module load x;id", "worker_init line 1 ('module load x;id')"),
    ]:
        refused = user.post(url, json={"worker_init": text})
        assert refused.status_code == 422, refused.text
        assert line in refused.text
    # Nothing was submitted.
    assert expect(user.get(f"/api/v2/project/{project['id']}/job/"), 200) == []


def test_a_local_resource_takes_exports_and_refuses_what_needs_a_shell(api: ApiClient) -> None:
    user, project, dataset, workflow = _setup(api)
    url = _submit_url(project, workflow, dataset)
    for text in ("source /opt/env.sh", "export A=1\nmodule load gcc"):
        refused = expect(user.post(url, json={"worker_init": text}), 422)
        assert "needs a shell before the tasks start, which only a SLURM job has" in str(
            refused["detail"]
        )
    job = expect(user.post(url, json={"worker_init": "# threads\nexport OMP_NUM_THREADS=1"}), 202)
    assert job["worker_init"] == "# threads\nexport OMP_NUM_THREADS=1"
