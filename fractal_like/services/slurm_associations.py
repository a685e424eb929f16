"""A user's SLURM accounts checked against the cluster's associations, and what the user
may charge (accounts, partitions, QOS, limits, fair-share) as one view.

Checked when accounts are set (by an admin, at registration, or by the user) and again at
submit. A cluster without accounting has no associations to check against: the accounts
are then taken as given, and the view says why it is empty.
"""

from __future__ import annotations

import logging

from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Profile, UserOAuth
from ..runner.slurm.associations import (
    AccountingUnavailableError,
    Association,
    associations_of,
    fair_share_of,
)
from ..schemas.slurm_associations import (
    AssociationRead,
    FairShareRead,
    SlurmAssociationsRead,
)
from .errors import InvalidError

logger = logging.getLogger("fractal_like.services.slurm_associations")
SLURM_TYPES = ("slurm_sudo", "slurm_ssh")


async def cluster_user(session: AsyncSession, profile_id: int | None) -> str | None:
    """The cluster user of a SLURM profile; None for a local profile or none at all."""
    if profile_id is None:
        return None
    profile = await session.get(Profile, profile_id)
    if profile is None or profile.resource_type not in SLURM_TYPES:
        return None
    return profile.username or None


async def check_accounts(
    session: AsyncSession, profile_id: int | None, accounts: list[str]
) -> list[Association] | None:
    """Refuse an account SLURM does not associate with the profile's cluster user; the
    cluster user's associations, or None when there was nothing to check them against."""
    username = await cluster_user(session, profile_id)
    if username is None or not accounts:
        return None
    try:
        associations = await associations_of(username)
    except AccountingUnavailableError as error:
        logger.info("SLURM accounts of %s not checked: %s", username, error)
        return None
    known = sorted({association.account for association in associations})
    for account in accounts:
        if account not in known:
            raise InvalidError(
                f"SLURM account {account!r} is not associated with cluster user "
                f"{username!r} (SLURM associates it with: {', '.join(known) or 'no account'})"
            )
    return associations


async def associations_view(session: AsyncSession, user: UserOAuth) -> SlurmAssociationsRead:
    username = await cluster_user(session, user.profile_id)
    if username is None:
        return SlurmAssociationsRead(
            cluster_user=None,
            checked=False,
            note="your profile is not on a SLURM resource",
            associations=[],
            fair_share=[],
        )
    try:
        associations = await associations_of(username)
        shares = await fair_share_of(username)
    except AccountingUnavailableError as error:
        return SlurmAssociationsRead(
            cluster_user=username,
            checked=False,
            note=f"the cluster keeps no accounting to ask ({error})",
            associations=[],
            fair_share=[],
        )
    return SlurmAssociationsRead(
        cluster_user=username,
        checked=True,
        note="" if associations else "SLURM associates no account with this cluster user",
        associations=[AssociationRead(**vars(association)) for association in associations],
        fair_share=[FairShareRead(**vars(share)) for share in shares],
    )
