"""Compute resources and profiles: listing them, and the rules that keep them consistent."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..config import Settings
from ..db import make_async_engine, make_session_factory
from ..models import Profile, Resource, UserOAuth
from ..runner.slurm.checks import Check
from ..schemas.resource import check_profile_for_resource
from .access import get_or_404
from .errors import InvalidError
from .resource_checks import (
    SaveChecker,
    all_checks,
    check_profile_save,
    check_resource_save,
)


async def all_resources(session: AsyncSession) -> list[Resource]:
    return list((await session.exec(select(Resource).order_by(col(Resource.id)))).all())


async def all_profiles(session: AsyncSession, resource_id: int | None = None) -> list[Profile]:
    """Every profile, or those of one resource, by id."""
    query = select(Profile).order_by(col(Profile.id))
    if resource_id is not None:
        query = query.where(Profile.resource_id == resource_id)
    return list((await session.exec(query)).all())


async def _profile_ids(session: AsyncSession, resource_id: int) -> list[int]:
    rows = await session.exec(select(Profile.id).where(Profile.resource_id == resource_id))
    return sorted(profile_id for profile_id in rows.all() if profile_id is not None)


async def check_type_kept(session: AsyncSession, resource: Resource, new_type: str) -> None:
    # Profiles are made for their resource's type: a resource in use keeps its type.
    if new_type == resource.type:
        return
    assert resource.id is not None
    profiles = await _profile_ids(session, resource.id)
    if profiles:
        raise InvalidError(
            f"resource {resource.id} has profiles {profiles} of type "
            f"{resource.type!r}: its type cannot become {new_type!r}"
        )


async def check_resource_unused(session: AsyncSession, resource_id: int) -> None:
    profiles = await _profile_ids(session, resource_id)
    if profiles:
        raise InvalidError(
            f"resource {resource_id} still has profiles {profiles}: delete them first"
        )


def check_profile(resource_type: str, profile: dict[str, Any]) -> None:
    """422 unless the profile has what its resource type needs."""
    try:
        check_profile_for_resource(resource_type, profile)
    except ValueError as error:
        raise InvalidError(str(error)) from None


async def check_profile_unused(session: AsyncSession, profile_id: int) -> None:
    rows = await session.exec(select(UserOAuth.id).where(UserOAuth.profile_id == profile_id))
    users = sorted(user_id for user_id in rows.all() if user_id is not None)
    if users:
        raise InvalidError(f"profile {profile_id} is still used by users {users}")


async def setup_checks(session: AsyncSession, resource: Resource) -> list[Check]:
    """The SLURM setup checks of a resource and its profiles (none for a local resource)."""
    if resource.type == "local":
        return []
    assert resource.id is not None
    return await all_checks(resource, await all_profiles(session, resource.id))


async def setup_checks_by_id(settings: Settings, resource_id: int) -> list[Check]:
    """The setup checks of a resource, for the command line (outside the web app)."""
    engine = make_async_engine(settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            resource = await get_or_404(session, Resource, resource_id, "resource")
            return await setup_checks(session, resource)
    finally:
        await engine.dispose()


async def check_new_resource(checker: SaveChecker, resource: Resource) -> None:
    """Refuse a new resource that fails its setup checks (it has no profiles yet)."""

    async def no_profiles() -> list[Profile]:
        return []

    await check_resource_save(checker, resource, None, no_profiles)


async def change_resource(
    session: AsyncSession, checker: SaveChecker, resource: Resource, columns: dict[str, Any]
) -> None:
    """Set the new columns, once the changed resource passed its setup checks."""
    assert resource.id is not None
    resource_id = resource.id
    before = Resource(**resource.model_dump())
    # Checked as a copy, outside the session: nothing is written while the checks run.
    candidate = Resource(**{**resource.model_dump(), **columns})

    async def profiles() -> list[Profile]:
        return await all_profiles(session, resource_id)

    await check_resource_save(checker, candidate, before, profiles)
    for key, value in columns.items():
        setattr(resource, key, value)


async def change_profile(
    checker: SaveChecker, resource: Resource, profile: Profile, columns: dict[str, Any]
) -> None:
    """Set the new columns, once the changed profile passed its setup checks."""
    before = Profile(**profile.model_dump())
    candidate = Profile(**{**profile.model_dump(), **columns})
    await check_profile_save(checker, resource, candidate, before)
    for key, value in columns.items():
        setattr(profile, key, value)
