"""GET /api/v2/job/squeue/: the SLURM queue as `squeue` prints it (Fractal's text/plain)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from ...services import squeue as service
from ...services.errors import InvalidError
from ...services.jobs import resource_of
from ..deps import SessionDep
from ..request_body import GuardedRoute
from ..users import ApiUser

logger = logging.getLogger("fractal_like.api.squeue")
router = APIRouter(prefix="/api/v2", tags=["jobs"], route_class=GuardedRoute)

# Fractal's own words, which its web page shows as they are.
SQUEUE_FAILED = "Error executing squeue command - please retry later."


@router.get(
    "/job/squeue/",
    # Declared as Fractal declares it (a JSON string); the answer is squeue's plain text.
    response_model=str,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_squeue(
    user: ApiUser, session: SessionDep, scope: service.Scope = service.Scope.ALL
) -> PlainTextResponse:
    """The cluster's queue: all jobs, the user's cluster user's, or their accounts'."""
    profile, resource = await resource_of(session, user)
    argv = service.squeue_argv(scope, user, profile, resource)
    try:
        output = await service.read_queue(argv, resource, profile)
    except service.SqueueFailedError as error:
        logger.error("squeue failed for user %s: %s", user.id, error)
        raise InvalidError(SQUEUE_FAILED) from None
    return PlainTextResponse(output)
