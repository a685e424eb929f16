"""The superusers' table of users: who they are, where they run, how many jobs they ran."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Job, LinkUserGroup, Profile, UserGroup, UserOAuth

# Fractal's columns, in its order; lists are joined with ARRAY_SEPARATOR in one cell.
COLUMNS = (
    "id",
    "email",
    "slurm_username",
    "slurm_accounts",
    "project_dirs",
    "user_groups",
    "num_jobs",
)
ARRAY_SEPARATOR = "|"


async def users_csv(
    session: AsyncSession,
    exclude_zero_jobs: bool,
    start_min: datetime | None,
    start_max: datetime | None,
) -> str:
    """One row per user, by e-mail; num_jobs counts the jobs started between the bounds.

    Users without a computing profile are listed too (with no slurm_username): Fractal
    leaves them out, but an admin looking for a user expects to find every one.
    """
    users = (
        await session.exec(
            select(UserOAuth, Profile.username)
            .outerjoin(Profile, col(Profile.id) == UserOAuth.profile_id)
            .order_by(col(UserOAuth.email))
        )
    ).all()
    groups: dict[int, list[str]] = defaultdict(list)
    memberships = await session.exec(
        select(LinkUserGroup.user_id, UserGroup.name)
        .join(UserGroup, col(UserGroup.id) == LinkUserGroup.group_id)
        .order_by(col(UserGroup.name))
    )
    for user_id, name in memberships.all():
        groups[user_id].append(name)
    jobs_query = select(Job.user_email, func.count()).group_by(col(Job.user_email))
    if start_min is not None:
        jobs_query = jobs_query.where(col(Job.start_timestamp) >= start_min)
    if start_max is not None:
        jobs_query = jobs_query.where(col(Job.start_timestamp) <= start_max)
    jobs = dict((await session.exec(jobs_query)).all())
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow(COLUMNS)
    for user, slurm_username in users:
        num_jobs = jobs.get(user.email, 0)
        if exclude_zero_jobs and num_jobs == 0:
            continue
        writer.writerow(
            (
                user.id,
                user.email,
                slurm_username or "",
                ARRAY_SEPARATOR.join(user.slurm_accounts),
                ARRAY_SEPARATOR.join(user.project_dirs),
                ARRAY_SEPARATOR.join(groups.get(user.id or 0, [])),
                num_jobs,
            )
        )
    return output.getvalue()
