"""Setup checks of a SLURM resource and its profiles, run before any job: what an admin
would otherwise learn from a first job's failure.

Each check says what is wrong and how to fix it. The server's checks (SLURM_CONF, the
commands, the partitions, the worker Python on this machine) run as the server, for a
resource whose SLURM commands run here (slurm_sudo). A profile's checks run through the
`ClusterHost` the caller's `host_for` builds for it, as its cluster user, exactly as the
executor will: `LocalSudoHost` for slurm_sudo, an `SshClusterHost` for slurm_ssh.

A check that could not be made (a command did not answer in time, the controller is
down, the sudo rules do not allow the command) is `inconclusive`: it says so, and saving
a resource is not refused for it (services/resources.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...models import Profile, Resource
from .cluster_host import ClusterHost, CommandRunner, ServerAccount, SshClusterHost
from .process import CommandResult, SlurmCommandError, last_line, run_command
from .requirements import SetupError, cluster_user_of, slurm_config_of

CHECK_TIMEOUT = 10.0  # per command: a cluster that takes longer is not answering
PROFILES_AT_ONCE = 4  # profiles checked concurrently (each runs a few sudo or SSH commands)
# What SLURM clients print when slurmctld does not answer: the cluster is down, not wrong.
_CONTROLLER_DOWN = ("Unable to contact slurm controller", "Socket timed out")

HostFactory = Callable[[Profile], ClusterHost]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str
    inconclusive: bool = False  # not made: nothing learned, so no reason to refuse


async def check_resource(
    resource: Resource, profiles: list[Profile], host_for: HostFactory
) -> list[Check]:
    """Every check of a resource whose SLURM commands run on this machine, and its profiles."""
    checks = await check_server(resource)
    if not checks[0].ok:
        return checks  # without SLURM_CONF nothing can be asked of SLURM
    return checks + await check_profiles(resource, profiles, host_for)


async def check_server(resource: Resource) -> list[Check]:
    """What the server itself needs: SLURM_CONF, the commands, the partitions, the Python."""
    checks = [_slurm_conf()]
    if not checks[0].ok:
        return checks
    checks.append(await _commands())
    checks.append(await _partitions(resource))
    checks.append(_worker_python_here(resource))
    return checks


async def check_profiles(
    resource: Resource, profiles: list[Profile], host_for: HostFactory
) -> list[Check]:
    """The checks of each profile, a few profiles at a time, in the profiles' order."""
    slots = asyncio.Semaphore(PROFILES_AT_ONCE)

    async def one(profile: Profile) -> list[Check]:
        async with slots:
            return await check_profile(resource, profile, host_for)

    results = await asyncio.gather(*(one(profile) for profile in profiles))
    return [check for checks in results for check in checks]


def _slurm_conf() -> Check:
    path = os.environ.get("SLURM_CONF")
    if path is None:
        if Path("/etc/slurm/slurm.conf").is_file():
            return Check("SLURM_CONF", True, "the server uses /etc/slurm/slurm.conf")
        return Check(
            "SLURM_CONF",
            False,
            "the server's environment has no SLURM_CONF and there is no /etc/slurm/slurm.conf:"
            " start fractal-like with SLURM_CONF set to the cluster's slurm.conf",
        )
    if not Path(path).is_file():
        return Check(
            "SLURM_CONF",
            False,
            f"SLURM_CONF names {path}, which is not a file the server can read: point it at "
            "the cluster's slurm.conf",
        )
    return Check("SLURM_CONF", True, f"the server uses {path}")


async def _commands() -> Check:
    try:
        result = await run_command(["sinfo", "--version"], timeout=CHECK_TIMEOUT)
    except SlurmCommandError as error:
        return Check(
            "SLURM commands",
            False,
            f"{error}: install SLURM's client commands where the server runs",
            inconclusive=_timed_out(error),
        )
    if result.returncode != 0:
        return Check("SLURM commands", False, f"sinfo fails: {last_line(result)}")
    return Check("SLURM commands", True, result.stdout.strip())


async def _partitions(resource: Resource, where: CommandRunner | None = None) -> Check:
    """The resource's partitions known to SLURM, asked `where` its commands run (default:
    this machine, as the server)."""
    try:
        config = slurm_config_of(resource)
    except SetupError as error:
        return Check("partitions", False, str(error))
    wanted = {config.default_slurm_config.partition}
    if config.gpu_slurm_config is not None and config.gpu_slurm_config.partition:
        wanted.add(config.gpu_slurm_config.partition)
    try:
        result = await (where or ServerAccount()).run(
            ["sinfo", "--noheader", "--format=%P"], CHECK_TIMEOUT, idempotent=True
        )
    except SlurmCommandError as error:
        return Check("partitions", False, f"sinfo: {error}", inconclusive=_timed_out(error))
    if result.returncode != 0:
        return Check(
            "partitions",
            False,
            f"sinfo cannot list partitions: {last_line(result)}",
            inconclusive=_controller_down(result),
        )
    known = {line.strip().rstrip("*") for line in result.stdout.splitlines() if line.strip()}
    missing = sorted(partition for partition in wanted if partition not in known)
    if missing:
        return Check(
            "partitions",
            False,
            f"SLURM has no partition {', '.join(map(repr, missing))} (it has "
            f"{', '.join(sorted(known)) or 'none'}): fix the partition in jobs_runner_config",
        )
    return Check("partitions", True, f"SLURM knows {', '.join(sorted(wanted))}")


def _worker_python_here(resource: Resource) -> Check:
    # slurm_sudo submits from this machine, which shares the cluster's file system: a worker
    # Python missing here is missing there (whether each user may run it: the profiles').
    python = resource.jobs_slurm_python_worker
    if not python:
        return Check("worker Python", False, "set jobs_slurm_python_worker on the resource")
    if not os.path.isfile(python):
        return Check(
            "worker Python",
            False,
            f"the worker Python {python} does not exist on this machine: install Python "
            "there, or set jobs_slurm_python_worker to one the cluster users can run",
        )
    return Check("worker Python", True, f"{python} exists")


async def check_profile(resource: Resource, profile: Profile, host_for: HostFactory) -> list[Check]:
    """What the profile's cluster user needs: to be reachable, the worker Python, a folder."""
    name = f"profile {profile.name!r}"
    try:
        user = cluster_user_of(profile)
        host = host_for(profile)
    except (SetupError, ValueError) as error:
        return [Check(name, False, str(error))]

    async def as_user(argv: list[str]) -> CommandResult | SlurmCommandError:
        try:
            return await host.run(argv, CHECK_TIMEOUT, idempotent=True)
        except SlurmCommandError as error:  # ClusterHostError included
            return error

    # squeue: a command the sudo rules of docs/slurm.md allow, unlike `true`.
    reached = await as_user(["squeue", "--noheader", "--format=%i", f"--user={user}"])
    if isinstance(host, SshClusterHost):
        checks = _ssh_login(name, host, reached)
        if not checks[0].ok:
            return checks
        # The login node's SLURM, not the server's (which may have none).
        checks.append(await _partitions(resource, host))
    elif isinstance(reached, SlurmCommandError) or _sudo_refused(reached):
        why = str(reached) if isinstance(reached, SlurmCommandError) else last_line(reached)
        return [
            Check(
                f"{name}: sudo",
                False,
                f"the server cannot run commands as {user!r} without a password ({why}): "
                "allow it in sudoers (see docs/slurm.md)",
                inconclusive=isinstance(reached, SlurmCommandError) and _timed_out(reached),
            )
        ]
    else:
        checks = [Check(f"{name}: sudo", True, f"commands run as {user}")]
    python = resource.jobs_slurm_python_worker
    if python:
        ran = await as_user([python, "-c", "import sys; print(sys.version.split()[0])"])
        checks.append(
            _as_user_check(
                f"{name}: worker Python",
                user,
                ran,
                ok=f"{python} runs as {user}: Python "
                + (ran.stdout.strip() if isinstance(ran, CommandResult) else ""),
                fix=f"{user} cannot run {python}",
                how="install Python there, or name one that user can read and run",
            )
        )
    # Without jobs_remote_dir the user's job folders go under the resource's jobs_local_dir.
    folder = profile.jobs_remote_dir or resource.jobs_local_dir
    which = (
        "jobs_remote_dir" if profile.jobs_remote_dir else "no jobs_remote_dir, so jobs_local_dir"
    )
    writable = await as_user(["test", "-d", folder, "-a", "-w", folder])
    checks.append(
        _as_user_check(
            f"{name}: jobs folder",
            user,
            writable,
            ok=f"{user} can write {folder} ({which})",
            fix=f"{user} cannot write {folder} ({which})",
            how="create it and give it to that user, or set the profile's jobs_remote_dir "
            "to a folder of theirs",
        )
    )
    return checks


def _ssh_login(
    name: str, host: SshClusterHost, reached: CommandResult | SlurmCommandError
) -> list[Check]:
    """Did the profile's SSH login work, and does squeue run there?"""
    where = host.ssh.target.where
    if isinstance(reached, SlurmCommandError):
        # A host that does not answer may be down for a while: not a reason to refuse.
        return [
            Check(
                f"{name}: SSH login",
                False,
                f"{reached}: check the resource's host and ssh settings and the profile's "
                "ssh_key_path (see docs/slurm.md, slurm_ssh)",
                inconclusive=_timed_out(reached) or "cannot reach" in str(reached),
            )
        ]
    if reached.returncode != 0:
        return [
            Check(
                f"{name}: SSH login",
                False,
                f"logged in to {where}, but squeue fails there ({last_line(reached)}): set "
                "jobs_runner_config.ssh.slurm_conf, or the user's PATH on the login node",
            )
        ]
    return [Check(f"{name}: SSH login", True, f"logged in to {where}; squeue runs there")]


def _as_user_check(
    name: str, user: str, result: CommandResult | SlurmCommandError, *, ok: str, fix: str, how: str
) -> Check:
    if isinstance(result, SlurmCommandError):
        return Check(name, False, f"{fix}: {result}", inconclusive=_timed_out(result))
    if result.returncode == 0:
        return Check(name, True, ok)
    if _sudo_refused(result):
        return Check(
            name,
            False,
            f"not checked: the sudo rules do not let the server run this as {user} "
            f"({last_line(result)})",
            inconclusive=True,
        )
    return Check(name, False, f"{fix} ({last_line(result)}): {how}")


def _sudo_refused(result: CommandResult) -> bool:
    """sudo itself said no (no rule, a password needed, no such user): the command never ran."""
    if result.returncode == 0:
        return False
    text = result.stderr
    return text.lstrip().startswith("sudo:") or "is not allowed to execute" in text


def _timed_out(error: SlurmCommandError) -> bool:
    return "did not answer within" in str(error)


def _controller_down(result: CommandResult) -> bool:
    return any(words in result.stderr for words in _CONTROLLER_DOWN)
