"""A user's SLURM accounts checked against the cluster's associations, and what the user
may charge (accounts, partitions, QOS, limits, fair-share) as one view.

Checked when accounts are set (by an admin, at registration, or by the user) and again at
submit. A cluster without accounting has no associations to check against: the accounts
are then taken as given, and the view says why it is empty.
"""

from __future__ import annotations

import logging

from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Profile, Resource, UserOAuth
from ..runner.slurm.associations import (
    AccountingUnavailableError,
    Association,
    associations_of,
    fair_share_of,
)
from ..runner.slurm.cluster_host import CommandRunner
from ..schemas.slurm_associations import (
    AssociationRead,
    FairShareRead,
    SlurmAssociationsRead,
)
from .errors import InvalidError
from .slurm_place import SlurmUnreachableError, slurm_place

logger = logging.getLogger("fractal_like.services.slurm_associations")
SLURM_TYPES = ("slurm_sudo", "slurm_ssh")


async def cluster_login(
    session: AsyncSession, profile_id: int | None
) -> tuple[str, CommandRunner | None] | None:
    """The cluster user of a SLURM profile and where its SLURM is asked (None: this machine,
    or a slurm_ssh login that is incomplete, which the queries then report)."""
    if profile_id is None:
        return None
    profile = await session.get(Profile, profile_id)
    if profile is None or profile.resource_type not in SLURM_TYPES or not profile.username:
        return None
    resource = await session.get(Resource, profile.resource_id)
    where: CommandRunner | None = None
    if resource is not None:
        try:
            where = slurm_place(resource, profile)
        except SlurmUnreachableError as error:
            logger.info("SLURM of profile %s not reachable: %s", profile.id, error)
            return None
    return profile.username, where


async def check_accounts(
    session: AsyncSession, profile_id: int | None, accounts: list[str]
) -> list[Association] | None:
    """Refuse an account SLURM does not associate with the profile's cluster user; the
    cluster user's associations, or None when there was nothing to check them against."""
    login = await cluster_login(session, profile_id)
    if login is None or not accounts:
        return None
    username, where = login
    try:
        associations = await associations_of(username, where)
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
    login = await cluster_login(session, user.profile_id)
    if login is None:
        return SlurmAssociationsRead(
            cluster_user=None,
            checked=False,
            note="your profile is not on a SLURM resource",
            associations=[],
            fair_share=[],
        )
    username, where = login
    try:
        associations = await associations_of(username, where)
        shares = await fair_share_of(username, where)
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
