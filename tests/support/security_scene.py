"""A small world of real objects for the security suite (schemathesis and the authz matrix).

"owner" owns one of every kind of object the API names in a path or query parameter, so
that generated or walked requests hit real rows, not only 404s; "other" is a second plain
user, "guest" a user without a computing profile, and the admin has a profile too (so that
/api/v2/ treats it as one more user). Every name of owner's objects carries MARKER, so a
response that shows one of them to someone else is easy to spot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from fractal_like.models import HistoryRun, HistoryUnit

from .helpers import (
    ApiClient,
    UserClient,
    expect,
    make_dataset,
    make_project,
    make_workflow,
    run_in_session,
)

MARKER = "owners-secret"


@dataclass
class Scene:
    api: ApiClient
    owner: UserClient
    other: UserClient
    guest: UserClient
    # Parameter name (path or query) -> the id of owner's object of that kind.
    ids: dict[str, int] = field(default_factory=dict)
    # Other values of owner's objects that queries take.
    values: dict[str, str] = field(default_factory=dict)

    @property
    def admin(self) -> UserClient:
        return self.api.admin

    def fill(self, path: str) -> str:
        """The path with every {parameter} replaced by owner's object of that kind."""
        return re.sub(r"\{(\w+)\}", lambda match: str(self.ids[match.group(1)]), path)


def build_scene(api: ApiClient, db_url: str) -> Scene:
    owner, other = api.new_user(), api.new_user()
    guest = api.new_user(with_profile=False)
    scene = Scene(api, owner, other, guest)
    ids = scene.ids
    ids["user_id"] = owner.id
    # Whom owner's project sharing routes (guest/?email=...) name.
    scene.values["email"] = guest.user["email"]
    ids["profile_id"] = api.local_profile()
    expect(
        api.admin.patch(f"/auth/users/{api.admin.id}/", json={"profile_id": ids["profile_id"]}), 200
    )
    ids["resource_id"] = expect(api.admin.get(f"/admin/v2/profile/{ids['profile_id']}/"), 200)[
        "resource_id"
    ]
    group = expect(api.admin.post("/auth/group/", json={"name": f"lab-of-{owner.id}"}), 201)
    expect(api.admin.post(f"/auth/group/{group['id']}/add-user/{owner.id}/"), 200)
    ids["group_id"] = ids["user_group_id"] = group["id"]

    project = make_project(owner, f"project-{MARKER}")
    ids["project_id"] = project["id"]
    dataset = make_dataset(owner, project["id"], f"dataset-{MARKER}")
    ids["dataset_id"] = dataset["id"]
    scene.values["zarr_url"] = f"{dataset['zarr_dir']}/plate.zarr/B/03/0"
    image = {"zarr_url": scene.values["zarr_url"]}
    expect(
        owner.post(f"/api/v2/project/{project['id']}/dataset/{dataset['id']}/images/", json=image),
        201,
    )
    # Private, so that no group shares it with "other".
    task = expect(
        owner.post(
            "/api/v2/task/?private=true",
            json={"name": f"task-{MARKER}", "command_parallel": "/bin/true"},
        ),
        201,
    )
    ids["task_id"] = task["id"]
    ids["task_group_id"] = ids["taskgroupv2_id"] = task["taskgroupv2_id"]
    workflow = make_workflow(owner, project["id"], [task["id"]], f"workflow-{MARKER}")
    ids["workflow_id"] = workflow["id"]
    ids["wftask_id"] = ids["workflowtask_id"] = ids["workflow_task_id"] = workflow["task_list"][0][
        "id"
    ]
    template = expect(
        owner.post(
            f"/api/v2/workflow-template/?workflow_id={workflow['id']}",
            json={"name": f"template-{MARKER}", "version": 1},
        ),
        201,
    )
    ids["template_id"] = template["id"]
    job = expect(
        owner.post(
            f"/api/v2/project/{project['id']}/job/submit/"
            f"?workflow_id={workflow['id']}&dataset_id={dataset['id']}",
            json={},
        ),
        202,
    )
    ids["job_id"] = job["id"]
    activity = expect(
        owner.post("/api/v2/task/collect/pip/?private=true", data={"package": f"pkg-{MARKER}"}),
        202,
    )
    ids["activity_id"] = ids["task_group_activity_id"] = activity["id"]
    ids["history_run_id"], ids["history_unit_id"] = _history_rows(db_url, job, dataset, task, ids)
    return scene


def _history_rows(
    db_url: str, job: dict[str, Any], dataset: dict[str, Any], task: dict[str, Any], ids: dict
) -> tuple[int, int]:
    """One run with one unit of owner's job (runs are made by the runner, not by the API)."""

    async def write(session: AsyncSession) -> tuple[int, int]:
        run = HistoryRun(
            job_id=job["id"],
            dataset_id=dataset["id"],
            workflowtask_id=ids["wftask_id"],
            task_id=task["id"],
            workflowtask_dump={"id": ids["wftask_id"], "order": 0},
            task_group_dump={},
            status="done",
            num_units_total=1,
            num_units_done=1,
        )
        session.add(run)
        await session.flush()
        assert run.id is not None
        unit = HistoryUnit(
            history_run_id=run.id,
            status="done",
            zarr_urls=[f"{dataset['zarr_dir']}/plate.zarr/B/03/0"],
            logfile=f"{job['working_dir']}/0_task/0-log.txt",
        )
        session.add(unit)
        await session.commit()
        assert unit.id is not None
        return run.id, unit.id

    return run_in_session(db_url, write)
