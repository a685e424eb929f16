"""What SLURM lets the current user charge (ours): accounts, partitions, QOS, limits and
fair-share, from the cluster's accounting."""

from __future__ import annotations

from fastapi import APIRouter

from ...schemas.slurm_associations import SlurmAssociationsRead
from ...services.slurm_associations import associations_view
from ..deps import SessionDep
from ..request_body import GuardedRoute
from ..users import ApiUser

router = APIRouter(prefix="/api/v2/slurm", tags=["slurm"], route_class=GuardedRoute)


@router.get("/associations/", response_model=SlurmAssociationsRead)
async def my_associations(user: ApiUser, session: SessionDep) -> SlurmAssociationsRead:
    """Your cluster user's SLURM associations and fair-share (empty, with a note, when the
    cluster keeps no accounting or your profile is not on SLURM)."""
    return await associations_view(session, user)
