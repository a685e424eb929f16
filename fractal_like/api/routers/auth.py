"""Login, the current user, and user administration under /auth/."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import exceptions as fu_exceptions

from ...models import Profile, Resource, UserGroup, UserOAuth
from ...schemas._base import Id
from ...schemas.user import (
    TokenRead,
    UserCreate,
    UserProfileInfo,
    UserRead,
    UserSetGroups,
    UserUpdate,
    UserUpdateOwn,
)
from ...services.access import user_or_404
from ...services.errors import InternalError, InvalidError, NotFoundError
from ...services.groups import (
    add_member,
    all_users,
    check_groups_exist,
    group_ids_names,
    group_named,
    set_memberships,
)
from ...services.projects import zarr_dirs_of_projects
from ...services.slurm_associations import check_accounts
from ..deps import SessionDep
from ..login_guard import client_address, login_guard
from ..request_body import GuardedRoute
from ..users import AUTH_COOKIE, CurrentUser, Superuser, UserManagerDep, get_jwt_strategy

router = APIRouter(prefix="/auth", tags=["auth"], route_class=GuardedRoute)


async def _read(session: SessionDep, user: UserOAuth, with_groups: bool = True) -> UserRead:
    """A user as shown; `group_ids_names` only when asked (null otherwise, as Fractal)."""
    data = UserRead.model_validate(user, from_attributes=True)
    if with_groups:
        assert user.id is not None
        data.group_ids_names = await group_ids_names(session, user.id)
    return data


@router.post("/token/login/", response_model=TokenRead)
async def login(
    request: Request,
    credentials: Annotated[OAuth2PasswordRequestForm, Depends()],
    manager: UserManagerDep,
) -> TokenRead:
    guard = login_guard(request.app)
    address = client_address(request, request.app.state.settings)
    wait = guard.retry_after(credentials.username, address)
    if wait is not None:  # HTTP's own: 429 and a Retry-After header
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many failed logins: try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    user = await manager.authenticate(credentials)
    if user is None or not user.is_active:
        guard.record_failure(credentials.username, address)
        # fastapi-users' wire protocol (400 and its ErrorCode), which clients match on.
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="LOGIN_BAD_CREDENTIALS")
    guard.record_success(credentials.username)
    strategy = get_jwt_strategy(request)
    token = await strategy.write_token(user)
    return TokenRead(access_token=token)


@router.post("/token/logout/")
async def logout(request: Request, _user: CurrentUser) -> JSONResponse:
    # A JWT cannot be revoked (a password change does that): logging out drops the cookie.
    # 200 with a JSON body, as the reference's OpenAPI documents.
    response = JSONResponse({})
    response.delete_cookie(
        AUTH_COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/current-user/", response_model=UserRead)
async def current_user(
    user: CurrentUser, session: SessionDep, group_ids_names: bool = False
) -> UserRead:
    return await _read(session, user, with_groups=group_ids_names)


@router.patch("/current-user/", response_model=UserRead)
async def update_current_user(
    update: UserUpdateOwn, user: CurrentUser, session: SessionDep, manager: UserManagerDep
) -> UserRead:
    # A guest account gets its 403 from CurrentUser (no write of any kind).
    changes = update.model_dump(exclude_unset=True)
    if "slurm_accounts" in changes:
        await check_accounts(session, user.profile_id, changes["slurm_accounts"])
    if changes:
        try:
            user = await manager.update(UserUpdate(**changes), user, safe=True)
        except fu_exceptions.InvalidPasswordException as error:
            raise InvalidError(str(error.reason)) from None
    return await _read(session, user)


@router.get("/current-user/profile-info/", response_model=UserProfileInfo)
async def current_user_profile_info(user: CurrentUser, session: SessionDep) -> UserProfileInfo:
    profile = await session.get(Profile, user.profile_id) if user.profile_id is not None else None
    if profile is None:
        return UserProfileInfo(has_profile=False)
    resource = await session.get(Resource, profile.resource_id)
    return UserProfileInfo(
        has_profile=True,
        resource_name=resource.name if resource is not None else None,
        profile_name=profile.name,
        username=profile.username,
    )


@router.get("/current-user/allowed-viewer-paths/", response_model=list[str])
async def allowed_viewer_paths(
    user: CurrentUser, session: SessionDep, include_shared_projects: bool = True
) -> list[str]:
    """The user's project dirs and (by default) the zarr dirs of every dataset of a project
    they own or accepted: what a data viewer may show them. Fractal's name for the switch
    is historical: it covers owned projects too."""
    paths = list(user.project_dirs)
    if include_shared_projects:
        assert user.id is not None
        paths += [path for path in await zarr_dirs_of_projects(session, user.id) if path]
    return paths


async def _check_profile(session: SessionDep, profile_id: int | None) -> None:
    if profile_id is not None and await session.get(Profile, profile_id) is None:
        raise NotFoundError(f"profile {profile_id} does not exist")


@router.post("/register/", response_model=UserRead, status_code=status.HTTP_201_CREATED)
async def register(
    request: Request,
    payload: UserCreate,
    _admin: Superuser,
    session: SessionDep,
    manager: UserManagerDep,
) -> UserRead:
    await _check_profile(session, payload.profile_id)
    await check_accounts(session, payload.profile_id, payload.slurm_accounts)
    try:
        user = await manager.create(payload, safe=False)
    except fu_exceptions.UserAlreadyExists:
        # fastapi-users' wire protocol (400 and its ErrorCode), which clients match on.
        raise HTTPException(400, detail="REGISTER_USER_ALREADY_EXISTS") from None
    except fu_exceptions.InvalidPasswordException as error:
        raise InvalidError(str(error.reason)) from None
    default_group = await _default_group(request, session)
    assert user.id is not None and default_group.id is not None
    await add_member(session, default_group.id, user.id)
    await session.commit()
    return await _read(session, user)


async def _default_group(request: Request, session: SessionDep) -> UserGroup:
    name = request.app.state.settings.DEFAULT_GROUP_NAME
    group = await group_named(session, name)
    if group is None:
        raise InternalError(f"default group {name!r} is missing")
    return group


@router.get("/users/", response_model=list[UserRead])
async def list_users(
    _admin: Superuser, session: SessionDep, profile_id: Id | None = None
) -> list[UserRead]:
    users = await all_users(session, profile_id)
    return [await _read(session, user) for user in users]


@router.get("/users/{user_id}/", response_model=UserRead)
async def get_user(
    user_id: Id, _admin: Superuser, session: SessionDep, group_ids_names: bool = True
) -> UserRead:
    user = await user_or_404(session, user_id)
    return await _read(session, user, with_groups=group_ids_names)


@router.patch("/users/{user_id}/", response_model=UserRead)
async def update_user(
    user_id: Id,
    payload: UserUpdate,
    admin: Superuser,
    session: SessionDep,
    manager: UserManagerDep,
) -> UserRead:
    user = await user_or_404(session, user_id)
    await _check_profile(session, payload.profile_id)
    if "slurm_accounts" in payload.model_fields_set:
        profile_id = (
            payload.profile_id if "profile_id" in payload.model_fields_set else user.profile_id
        )
        await check_accounts(session, profile_id, payload.slurm_accounts)
    if user.id == admin.id and payload.is_superuser is False:
        raise InvalidError("a superuser cannot remove their own superuser status")
    will_be_superuser = user.is_superuser if payload.is_superuser is None else payload.is_superuser
    will_be_guest = user.is_guest if payload.is_guest is None else payload.is_guest
    if will_be_superuser and will_be_guest:
        raise InvalidError("a superuser cannot be a guest")
    try:
        user = await manager.update(payload, user, safe=False)
    except fu_exceptions.UserAlreadyExists:
        # fastapi-users' wire protocol (400 and its ErrorCode), which clients match on.
        raise HTTPException(400, detail="UPDATE_USER_EMAIL_ALREADY_EXISTS") from None
    except fu_exceptions.InvalidPasswordException as error:
        raise InvalidError(str(error.reason)) from None
    return await _read(session, user)


@router.post("/users/{user_id}/set-groups/", response_model=UserRead)
async def set_user_groups(
    request: Request,
    user_id: Id,
    payload: UserSetGroups,
    _admin: Superuser,
    session: SessionDep,
) -> UserRead:
    user = await user_or_404(session, user_id)
    wanted = set(payload.group_ids)
    await check_groups_exist(session, wanted)
    default_group = await _default_group(request, session)
    assert user.id is not None and default_group.id is not None
    await set_memberships(session, user.id, sorted(wanted), default_group.id)
    await session.commit()
    return await _read(session, user)
