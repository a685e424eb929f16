"""Stars on a project's datasets and workflows (Fractal's star/unstar routes).

Unlike a project's star (personal, on the user's link: see projects.py), a dataset's or a
workflow's star is a flag of the object itself, seen by everyone who shares the project,
so setting it needs write access.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from ...models import Dataset, Workflow
from ...schemas._base import Id
from ..deps import SessionDep
from ..ownership import WriteDataset, WriteWorkflow
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(prefix="/api/v2/project", tags=["stars"], route_class=GuardedRoute)


async def _set_star(session: SessionDep, obj: Dataset | Workflow, starred: bool) -> Response:
    obj.is_starred = starred
    await session.commit()
    return Response(status_code=status.HTTP_200_OK)


@router.post("/{project_id}/dataset/{dataset_id}/star/", status_code=status.HTTP_200_OK)
async def star_dataset(
    dataset: WriteDataset, project_id: Id, dataset_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    return await _set_star(session, dataset, True)


@router.post("/{project_id}/dataset/{dataset_id}/unstar/", status_code=status.HTTP_200_OK)
async def unstar_dataset(
    dataset: WriteDataset, project_id: Id, dataset_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    return await _set_star(session, dataset, False)


@router.post("/{project_id}/workflow/{workflow_id}/star/", status_code=status.HTTP_200_OK)
async def star_workflow(
    workflow: WriteWorkflow, project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    return await _set_star(session, workflow, True)


@router.post("/{project_id}/workflow/{workflow_id}/unstar/", status_code=status.HTTP_200_OK)
async def unstar_workflow(
    workflow: WriteWorkflow, project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    return await _set_star(session, workflow, False)
