"""What SLURM lets a user charge (ours): associations and fair-share."""

from __future__ import annotations

from pydantic import BaseModel


class AssociationRead(BaseModel):
    account: str
    partition: str  # "" for every partition
    qos: list[str]
    default_qos: str
    max_jobs: int | None
    max_submit_jobs: int | None
    max_wall: str
    grp_tres: str
    max_tres: str


class FairShareRead(BaseModel):
    account: str
    raw_shares: str
    norm_shares: float | None
    raw_usage: int | None
    effective_usage: float | None
    fair_share: float | None


class SlurmAssociationsRead(BaseModel):
    cluster_user: str | None
    checked: bool  # False when SLURM could not be asked (no SLURM profile, no accounting)
    note: str
    associations: list[AssociationRead]
    fair_share: list[FairShareRead]
