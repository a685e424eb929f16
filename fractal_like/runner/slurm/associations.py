"""What SLURM lets a cluster user charge: associations (account, partition, QOS, limits)
from `sacctmgr`, and fair-share from `sshare`, both read-only: run as the server, or on a
slurm_ssh resource's login node as the profile's user.

Without an accounting database (no slurmdbd) neither can answer: AccountingUnavailableError
says so, and callers treat accounts as unchecked rather than wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..accounts import check_account
from .cluster_host import CommandRunner, ServerAccount
from .process import CommandResult, SlurmCommandError, last_line

ASSOC_FIELDS = "Account,Partition,QOS,DefaultQOS,MaxJobs,MaxSubmit,MaxWall,GrpTRES,MaxTRES"
SHARE_FIELDS = "Account,User,RawShares,NormShares,RawUsage,EffectvUsage,FairShare"


class AccountingUnavailableError(SlurmCommandError):
    """sacctmgr or sshare could not answer (no accounting database, or it is down)."""


@dataclass(frozen=True)
class Association:
    account: str
    partition: str  # "" when it holds for every partition
    qos: tuple[str, ...]
    default_qos: str
    max_jobs: int | None
    max_submit_jobs: int | None
    max_wall: str  # SLURM's time string, "" when unlimited
    grp_tres: str  # e.g. "cpu=64,mem=256G", "" when unlimited: all jobs of the association
    max_tres: str = ""  # the same, for each job


@dataclass(frozen=True)
class FairShare:
    account: str
    raw_shares: str
    norm_shares: float | None
    raw_usage: int | None
    effective_usage: float | None
    fair_share: float | None  # 1.0 = untouched share, toward 0 as the user uses more


async def associations_of(
    cluster_user: str, where: CommandRunner | None = None
) -> list[Association]:
    """Every association of this cluster user, as sacctmgr lists them."""
    check_account(cluster_user)
    result = await _ask(
        [
            "sacctmgr",
            "--noheader",
            "--parsable2",
            "show",
            "associations",
            "where",
            f"users={cluster_user}",
            f"format={ASSOC_FIELDS}",
        ],
        where,
    )
    associations = []
    for line in result.stdout.splitlines():
        parts = line.split("|")
        if len(parts) < 9 or not parts[0]:
            continue
        associations.append(
            Association(
                account=parts[0],
                partition=parts[1],
                qos=tuple(qos for qos in parts[2].split(",") if qos),
                default_qos=parts[3],
                max_jobs=_int(parts[4]),
                max_submit_jobs=_int(parts[5]),
                max_wall=parts[6],
                grp_tres=parts[7],
                max_tres=parts[8],
            )
        )
    return associations


async def fair_share_of(cluster_user: str, where: CommandRunner | None = None) -> list[FairShare]:
    """The user's fair-share in each of their accounts."""
    check_account(cluster_user)
    result = await _ask(
        ["sshare", "--noheader", "--parsable2", "-U", "-u", cluster_user, "-o", SHARE_FIELDS],
        where,
    )
    shares = []
    for line in result.stdout.splitlines():
        parts = [part.strip() for part in line.split("|")]
        if len(parts) < 7 or parts[1] != cluster_user:
            continue
        shares.append(
            FairShare(
                account=parts[0],
                raw_shares=parts[2],
                norm_shares=_float(parts[3]),
                raw_usage=_int(parts[4]),
                effective_usage=_float(parts[5]),
                fair_share=_float(parts[6]),
            )
        )
    return shares


async def _ask(argv: list[str], where: CommandRunner | None) -> CommandResult:
    """Run a query `where` the profile's SLURM is (default: this machine, as the server)."""
    try:
        result = await (where or ServerAccount()).run(argv, 30, idempotent=True)
    except SlurmCommandError as error:  # timed out, or the SSH login failed
        raise AccountingUnavailableError(f"{argv[0]} did not answer: {error}") from None
    if result.returncode != 0:
        raise AccountingUnavailableError(f"{argv[0]} cannot answer: {last_line(result)}")
    return result


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
