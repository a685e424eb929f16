"""Stars on a project's datasets and workflows (Fractal's star/unstar routes).

Unlike a project's star (personal, on the user's link: see projects.py), a dataset's or a
workflow's star is a flag of the object itself, seen by everyone who shares the project,
so setting it needs write access.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlmodel import SQLModel

from ...models import Dataset, Workflow
from ...schemas._base import Id
from ...services.access import Need, child_of_project, project_for
from ..deps import SessionDep
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(prefix="/api/v2/project", tags=["stars"], route_class=GuardedRoute)


async def _set_star(
    session: SessionDep,
    user: ApiUser,
    project_id: int,
    model: type[SQLModel],
    object_id: int,
    what: str,
    starred: bool,
) -> Response:
    await project_for(session, user, project_id, Need.WRITE)
    obj = await child_of_project(session, model, object_id, project_id, what)
    obj.is_starred = starred  # type: ignore[attr-defined]
    await session.commit()
    return Response(status_code=status.HTTP_200_OK)


@router.post("/{project_id}/dataset/{dataset_id}/star/", status_code=status.HTTP_200_OK)
async def star_dataset(
    project_id: Id, dataset_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    return await _set_star(session, user, project_id, Dataset, dataset_id, "dataset", True)


@router.post("/{project_id}/dataset/{dataset_id}/unstar/", status_code=status.HTTP_200_OK)
async def unstar_dataset(
    project_id: Id, dataset_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    return await _set_star(session, user, project_id, Dataset, dataset_id, "dataset", False)


@router.post("/{project_id}/workflow/{workflow_id}/star/", status_code=status.HTTP_200_OK)
async def star_workflow(
    project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    return await _set_star(session, user, project_id, Workflow, workflow_id, "workflow", True)


@router.post("/{project_id}/workflow/{workflow_id}/unstar/", status_code=status.HTTP_200_OK)
async def unstar_workflow(
    project_id: Id, workflow_id: Id, user: ApiUser, session: SessionDep
) -> Response:
    return await _set_star(session, user, project_id, Workflow, workflow_id, "workflow", False)
