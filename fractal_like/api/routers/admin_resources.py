"""Compute resources and profiles under /admin/v2/ (superusers only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from pydantic import ValidationError

from ...models import Profile, Resource
from ...runner.slurm.checks import Check
from ...schemas._base import Id
from ...schemas.resource import (
    ProfileCreate,
    ProfileRead,
    ProfileUpdate,
    ResourceCreate,
    ResourceRead,
    ResourceUpdate,
    SetupCheckRead,
)
from ...services import resources
from ...services.access import get_or_404
from ...services.resource_checks import SaveChecker, check_profile_save, checks_on_save
from ...services.unique import commit_unique
from ..deps import SessionDep
from ..errors import unprocessable_from
from ..request_body import GuardedRoute
from ..users import Superuser

router = APIRouter(prefix="/admin/v2", tags=["admin"], route_class=GuardedRoute)


def save_checker() -> SaveChecker:
    """The setup checks a save of a SLURM resource or profile runs (a dependency: tests of
    the routes' other rules replace it when they have no cluster)."""
    return checks_on_save


CheckerDep = Annotated[SaveChecker, Depends(save_checker)]


async def _get_resource(session: SessionDep, resource_id: Id) -> Resource:
    return await get_or_404(session, Resource, resource_id, "resource")


async def _get_profile(session: SessionDep, profile_id: Id) -> Profile:
    return await get_or_404(session, Profile, profile_id, "profile")


async def _commit_unique(session: SessionDep, what: str, name: str) -> None:
    await commit_unique(session, taken=f"a {what} named {name!r} already exists")


@router.get("/resource/", response_model=list[ResourceRead])
async def list_resources(_admin: Superuser, session: SessionDep) -> list[Resource]:
    return await resources.all_resources(session)


def _resource_columns(payload: ResourceCreate) -> dict[str, Any]:
    data = payload.model_dump()
    data["tasks_python_config"] = data["tasks_python_config"] or {}
    return data


@router.post("/resource/", response_model=ResourceRead, status_code=status.HTTP_201_CREATED)
async def create_resource(
    payload: ResourceCreate, _admin: Superuser, session: SessionDep, checker: CheckerDep
) -> Resource:
    resource = Resource(**_resource_columns(payload))
    await resources.check_new_resource(checker, resource)
    session.add(resource)
    await _commit_unique(session, "resource", payload.name)
    await session.refresh(resource)
    return resource


@router.put("/resource/{resource_id}/", response_model=ResourceRead)
async def replace_resource(
    resource_id: Id,
    payload: ResourceCreate,
    _admin: Superuser,
    session: SessionDep,
    checker: CheckerDep,
) -> Resource:
    """Overwrite the whole resource: fields left out take their defaults, as on POST."""
    resource = await _get_resource(session, resource_id)
    await resources.check_type_kept(session, resource, payload.type)
    await resources.change_resource(session, checker, resource, _resource_columns(payload))
    await _commit_unique(session, "resource", payload.name)
    await session.refresh(resource)
    return resource


@router.get("/resource/{resource_id}/", response_model=ResourceRead)
async def get_resource(resource_id: Id, _admin: Superuser, session: SessionDep) -> Resource:
    return await _get_resource(session, resource_id)


@router.patch("/resource/{resource_id}/", response_model=ResourceRead)
async def update_resource(
    resource_id: Id,
    payload: ResourceUpdate,
    _admin: Superuser,
    session: SessionDep,
    checker: CheckerDep,
) -> Resource:
    resource = await _get_resource(session, resource_id)
    current: dict[str, Any] = ResourceRead.model_validate(resource).model_dump(
        exclude={"id", "timestamp_created"}
    )
    current["tasks_python_config"] = current["tasks_python_config"] or None
    current.update(payload.model_dump(exclude_unset=True))
    try:
        merged = ResourceCreate.model_validate(current)
    except ValidationError as error:
        raise unprocessable_from(error)
    await resources.change_resource(session, checker, resource, _resource_columns(merged))
    await _commit_unique(session, "resource", merged.name)
    await session.refresh(resource)
    return resource


@router.get("/resource/{resource_id}/check/", response_model=list[SetupCheckRead])
async def check_resource(resource_id: Id, _admin: Superuser, session: SessionDep) -> list[Check]:
    """Ours: the setup checks of a SLURM resource and its profiles, as
    `fractal-like resource check ID` runs them (a local resource has none)."""
    return await resources.setup_checks(session, await _get_resource(session, resource_id))


@router.delete("/resource/{resource_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_resource(resource_id: Id, _admin: Superuser, session: SessionDep) -> Response:
    resource = await _get_resource(session, resource_id)
    await resources.check_resource_unused(session, resource_id)
    await session.delete(resource)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/resource/{resource_id}/profile/", response_model=list[ProfileRead])
async def list_resource_profiles(
    resource_id: Id, _admin: Superuser, session: SessionDep
) -> list[Profile]:
    await _get_resource(session, resource_id)
    return await resources.all_profiles(session, resource_id)


@router.post(
    "/resource/{resource_id}/profile/",
    response_model=ProfileRead,
    status_code=status.HTTP_201_CREATED,
)
async def create_profile(
    resource_id: Id,
    payload: ProfileCreate,
    _admin: Superuser,
    session: SessionDep,
    checker: CheckerDep,
) -> Profile:
    resource = await _get_resource(session, resource_id)
    resources.check_profile(resource.type, payload.model_dump())
    data = payload.model_dump()
    data["resource_type"] = resource.type
    profile = Profile(resource_id=resource_id, **data)
    await check_profile_save(checker, resource, profile, None)
    session.add(profile)
    await _commit_unique(session, "profile", payload.name)
    await session.refresh(profile)
    return profile


@router.get("/profile/", response_model=list[ProfileRead])
async def list_profiles(_admin: Superuser, session: SessionDep) -> list[Profile]:
    return await resources.all_profiles(session)


@router.get("/profile/{profile_id}/", response_model=ProfileRead)
async def get_profile(profile_id: Id, _admin: Superuser, session: SessionDep) -> Profile:
    return await _get_profile(session, profile_id)


@router.patch("/profile/{profile_id}/", response_model=ProfileRead)
async def update_profile(
    profile_id: Id,
    payload: ProfileUpdate,
    _admin: Superuser,
    session: SessionDep,
    checker: CheckerDep,
) -> Profile:
    profile = await _get_profile(session, profile_id)
    merged = ProfileRead.model_validate(profile).model_dump()
    merged.update(payload.model_dump(exclude_unset=True))
    resources.check_profile(profile.resource_type, merged)
    resource = await _get_resource(session, profile.resource_id)
    await resources.change_profile(
        checker, resource, profile, payload.model_dump(exclude_unset=True)
    )
    await _commit_unique(session, "profile", profile.name)
    await session.refresh(profile)
    return profile


@router.put("/profile/{profile_id}/", response_model=ProfileRead)
async def replace_profile(
    profile_id: Id,
    payload: ProfileCreate,
    _admin: Superuser,
    session: SessionDep,
    checker: CheckerDep,
) -> Profile:
    """Overwrite the whole profile (its resource stays): fields left out become null."""
    profile = await _get_profile(session, profile_id)
    resources.check_profile(profile.resource_type, payload.model_dump())
    resource = await _get_resource(session, profile.resource_id)
    await resources.change_profile(
        checker, resource, profile, payload.model_dump(exclude={"resource_type"})
    )
    await _commit_unique(session, "profile", payload.name)
    await session.refresh(profile)
    return profile


@router.delete("/profile/{profile_id}/", status_code=status.HTTP_204_NO_CONTENT)
async def delete_profile(profile_id: Id, _admin: Superuser, session: SessionDep) -> Response:
    profile = await _get_profile(session, profile_id)
    await resources.check_profile_unused(session, profile_id)
    await session.delete(profile)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
