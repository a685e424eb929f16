"""A cheap look at the request's token, made before its body is read.

Only the signature, expiry and audience are checked (no database): enough to refuse an
anonymous or forged request before it costs the server a large body. The full check
(the user exists, is active, the token is still valid for them) stays in the
dependencies of `users.py`.
"""

from __future__ import annotations

import jwt
from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi_users.jwt import decode_jwt

from . import users


def _candidate_tokens(request: Request) -> list[str]:
    tokens = []
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        tokens.append(value.strip())
    cookie = request.cookies.get(users.AUTH_COOKIE)
    if cookie:
        tokens.append(cookie)
    return tokens


def has_valid_token(request: Request) -> bool:
    """True when a Bearer header or the auth cookie holds a token this server signed."""
    strategy = users.get_jwt_strategy(request)
    for token in _candidate_tokens(request):
        try:
            decode_jwt(
                token,
                strategy.decode_key,
                strategy.token_audience,
                algorithms=[strategy.algorithm],
            )
        except jwt.PyJWTError:
            continue
        return True
    return False


def requires_login(dependant: Dependant) -> bool:
    """Whether a route depends (at any depth) on a logged-in user."""
    login_dependencies = {users.current_active_user, users.current_superuser}
    pending = [dependant]
    while pending:
        current = pending.pop()
        if current.call in login_dependencies:
            return True
        pending.extend(current.dependencies)
    return False


def unauthorized() -> JSONResponse:
    # The very body fastapi-users answers with, so clients see one 401 whoever refused.
    return JSONResponse(status_code=401, content={"detail": "Unauthorized"})
