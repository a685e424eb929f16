"""The SLURM commands the runner uses, run as argv lists (never through a shell).

They run on a `ClusterHost` (cluster_host.py): by default this machine, as described
below (slurm_sudo); over SSH on a login node as the profile's user for slurm_ssh.

`sbatch`, `scancel` and folder creation run as the profile's cluster user through
`sudo -n -u <user>`, so jobs and their files belong to that user; `squeue`, `scontrol`
and `sacct` only read state and run as the server's own account. What runs as the user
gets the units' allow-listed environment (`unit_env`), SLURM_CONF included, and nothing
else: sbatch exports its environment to the job, so the job (the worker and its units)
sees exactly that, never the server's variables, even when the user is the server's own
account.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..accounts import as_account, check_account
from ..unit_env import unit_environment
from .cluster_host import ClusterHost, CommandRunner, LocalSudoHost, ServerAccount
from .process import (
    COMMAND_TIMEOUT_SECONDS,
    CommandResult,
    SlurmCommandError,
    last_line,
    run_command,
)

__all__ = [
    "COMMAND_TIMEOUT_SECONDS",
    "FINAL_STATES",
    "CommandResult",
    "JobInfo",
    "SlurmCommandError",
    "SlurmCommands",
    "SlurmReader",
    "run_command",
]

JOB_ID = re.compile(r"^\d+(_\d+)?$")
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)


@dataclass
class JobInfo:
    """What SLURM still knows about a job that left the queue, and where that came from."""

    state: str
    exit_code: str = ""  # "3:0" = exit code 3; "0:9" = killed by signal 9
    reason: str = ""
    node: str = ""
    source: str = ""  # one of SOURCES
    partition: str = ""  # where it ran: a preempted job's partition is worth naming


# Where job_info read a job, in the order it asks: SLURM's accounting database, the
# controller's memory (MinJobAge seconds after the end), the job-completion text file.
SOURCES = ("sacct", "scontrol", "the job completion file (sacct -c)")


@dataclass
class SlurmCommands:
    """What runs as the profile's cluster user: folders, sbatch, scancel.

    `host` is where (None: this machine through sudo, with the environment below).
    """

    username: str
    slurm_conf: str | None = field(default_factory=lambda: os.environ.get("SLURM_CONF"))
    host: ClusterHost | None = field(default=None, repr=False)
    environment: dict[str, str] = field(init=False, repr=False)
    cluster: ClusterHost = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            check_account(self.username)
        except ValueError:
            raise ValueError(f"{self.username!r} is not a valid cluster user name") from None
        conf = {"SLURM_CONF": self.slurm_conf} if self.slurm_conf else {}
        self.environment = unit_environment(account=self.username, extra=conf)
        if self.host is not None and self.host.user != self.username:
            raise ValueError(
                f"the cluster host logs in as {self.host.user!r}, not {self.username!r}"
            )
        self.cluster = self.host or LocalSudoHost(self.username, self.environment)

    def as_user(self, argv: list[str]) -> list[str]:
        """argv run as the profile's user (through sudo unless that is us), in its environment."""
        return as_account(self.username, argv, self.environment)

    async def mkdir(self, path: str) -> None:
        """Raises AccountCommandError when the user cannot create it."""
        await self.cluster.mkdir(path)

    async def sbatch(self, argv: list[str]) -> str:
        """Submit; returns the SLURM job id. Raises SlurmCommandError with SLURM's words."""
        result = await self.cluster.run(argv)
        job_id = result.stdout.strip().split(";")[0]
        if result.returncode != 0 or not JOB_ID.match(job_id):
            raise SlurmCommandError(_sbatch_refusal(result))
        return job_id

    async def scancel(self, job_ids: list[str]) -> None:
        ids = [job_id for job_id in job_ids if JOB_ID.match(job_id)]
        if ids:
            await self.cluster.run(["scancel", *ids])


class SlurmReader:
    """Read-only state queries: any account may run them, so the server's own does (or,
    over SSH, the profile's user on the login node)."""

    def __init__(self, host: CommandRunner | None = None) -> None:
        self.host: CommandRunner = host or ServerAccount()

    async def _query(self, argv: list[str]) -> CommandResult:
        return await self.host.run(argv, idempotent=True)  # a query: safe to repeat

    async def squeue(self, job_ids: list[str]) -> dict[str, str]:
        """State of each job SLURM still lists (finished ones stay for MinJobAge seconds)."""
        ids = [job_id for job_id in job_ids if JOB_ID.match(job_id)]
        if not ids:
            return {}
        result = await self._query(
            ["squeue", "--noheader", "--states=all", "--format=%i|%T", f"--jobs={','.join(ids)}"]
        )
        if result.returncode != 0:
            if "Invalid job id" in result.stderr:
                return {}  # none of them is known any more
            raise SlurmCommandError(f"squeue failed: {last_line(result)}")
        states: dict[str, str] = {}
        for line in result.stdout.splitlines():
            job_id, _, state = line.strip().partition("|")
            if job_id:
                states[job_id] = state.split()[0] if state else ""
        return states

    async def find_by_name(self, name: str) -> str | None:
        """The id of a job with this (unique) name, if SLURM still lists it; None only when
        squeue answered (SlurmCommandError when it did not: "no such job" must be sure)."""
        result = await self._query(
            ["squeue", "--noheader", "--states=all", "--format=%i", f"--name={name}"]
        )
        if result.returncode != 0:
            raise SlurmCommandError(f"squeue failed: {last_line(result)}")
        ids = result.stdout.split()
        return ids[0] if ids else None

    async def job_info(self, job_id: str) -> JobInfo | None:
        """State, exit code and reason of a job that left the queue: SLURM's accounting
        (`sacct`) when it has the job's final state, else `scontrol`, else `sacct -c`."""
        if not JOB_ID.match(job_id):
            return None
        from_accounting = await self._sacct(job_id, completion_file=False)
        if from_accounting is not None and from_accounting.state in FINAL_STATES:
            return from_accounting
        result = await self._query(["scontrol", "show", "job", "--oneliner", job_id])
        if result.returncode == 0 and "JobState=" in result.stdout:
            fields = dict(item.split("=", 1) for item in result.stdout.split() if "=" in item)
            return JobInfo(
                state=fields.get("JobState", ""),
                exit_code=fields.get("ExitCode", ""),
                reason=fields.get("Reason", ""),
                node=fields.get("NodeList", ""),
                source=SOURCES[1],
                partition=fields.get("Partition", ""),
            )
        return await self._sacct(job_id, completion_file=True) or from_accounting

    async def _sacct(self, job_id: str, completion_file: bool) -> JobInfo | None:
        """The job's allocation line from accounting, or from the completion file (-c);
        None when sacct cannot answer (no accounting storage) or does not know the job."""
        where = ["-c"] if completion_file else ["-X", "--allusers"]
        fields = "JobID,State,ExitCode,NodeList" + ("" if completion_file else ",Reason,Partition")
        result = await self._query(
            ["sacct", *where, "-n", "-P", "-j", job_id, f"--format={fields}"]
        )
        for line in result.stdout.splitlines() if result.returncode == 0 else []:
            parts = line.split("|")
            if len(parts) >= 3 and parts[0] == job_id and parts[1]:
                return JobInfo(
                    state=parts[1].split()[0],
                    exit_code=parts[2],
                    node=parts[3] if len(parts) > 3 else "",
                    reason=parts[4] if len(parts) > 4 else "",
                    source=SOURCES[2] if completion_file else SOURCES[0],
                    partition=parts[5] if len(parts) > 5 else "",
                )
        return None


def _sbatch_refusal(result: CommandResult) -> str:
    """sbatch's own words, without the 'sbatch: error:' noise."""
    lines = [
        re.sub(r"^sbatch: error: ", "", line.strip())
        for line in (result.stderr or result.stdout).splitlines()
        if line.strip()
    ]
    if "a password is required" in result.stderr or "sudo:" in result.stderr:
        return f"sudo refused to run sbatch as this user ({'; '.join(lines)})"
    return "; ".join(lines) or f"sbatch ended with exit code {result.returncode} and no message"
