"""Setup checks of a SLURM resource and its profiles, run before any job: what an admin
would otherwise learn from a first job's failure.

Each check says what is wrong and how to fix it. They run as the server (SLURM_CONF, the
commands, the partitions) and as each profile's cluster user through `sudo -n` (the worker
Python, the jobs folder), exactly as the executor will.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ...models import Profile, Resource
from ...slurm_config import SlurmConfig
from ..accounts import as_account, check_account
from ..unit_env import unit_environment
from .process import CommandResult, SlurmCommandError, last_line, run_command

CHECK_TIMEOUT = 30.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    message: str


async def check_resource(resource: Resource, profiles: list[Profile]) -> list[Check]:
    """Every check that applies to a slurm_sudo resource and these profiles of it."""
    checks = [_slurm_conf()]
    if not checks[0].ok:
        return checks  # nothing else can be asked of SLURM
    checks.append(await _commands())
    checks.append(await _partitions(resource))
    for profile in profiles:
        checks.extend(await _profile(resource, profile))
    return checks


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
        )
    if result.returncode != 0:
        return Check("SLURM commands", False, f"sinfo fails: {last_line(result)}")
    return Check("SLURM commands", True, result.stdout.strip())


async def _partitions(resource: Resource) -> Check:
    try:
        config = SlurmConfig.model_validate(resource.jobs_runner_config)
    except ValidationError as error:
        return Check("partitions", False, f"the SLURM configuration is invalid: {error}")
    wanted = {config.default_slurm_config.partition}
    if config.gpu_slurm_config is not None and config.gpu_slurm_config.partition:
        wanted.add(config.gpu_slurm_config.partition)
    result = await run_command(["sinfo", "--noheader", "--format=%P"], timeout=CHECK_TIMEOUT)
    if result.returncode != 0:
        return Check("partitions", False, f"sinfo cannot list partitions: {last_line(result)}")
    known = {line.strip().rstrip("*") for line in result.stdout.splitlines() if line.strip()}
    missing = sorted(partition for partition in wanted if partition not in known)
    if missing:
        return Check(
            "partitions",
            False,
            f"SLURM has no partition {', '.join(map(repr, missing))} (it has "
            f"{', '.join(sorted(known)) or 'none'}): fix jobs_runner_config",
        )
    return Check("partitions", True, f"SLURM knows {', '.join(sorted(wanted))}")


async def _profile(resource: Resource, profile: Profile) -> list[Check]:
    name = f"profile {profile.name!r}"
    if not profile.username:
        return [Check(name, False, f"{name} has no username: set the cluster user it runs as")]
    try:
        check_account(profile.username)
    except ValueError:
        return [Check(name, False, f"{profile.username!r} is not a Unix user name")]
    environment = unit_environment(account=profile.username)

    async def as_user(argv: list[str]) -> CommandResult:
        return await run_command(
            as_account(profile.username, argv, environment), timeout=CHECK_TIMEOUT
        )

    checks = []
    sudo = await as_user(["true"])
    if sudo.returncode != 0:
        return [
            Check(
                f"{name}: sudo",
                False,
                f"the server cannot run commands as {profile.username!r} without a password "
                f"({last_line(sudo)}): allow it in sudoers (see docs/slurm.md)",
            )
        ]
    checks.append(Check(f"{name}: sudo", True, f"sudo -n -u {profile.username} works"))
    python = resource.jobs_slurm_python_worker
    if not python:
        checks.append(
            Check(f"{name}: worker Python", False, "set jobs_slurm_python_worker on the resource")
        )
    else:
        ran = await as_user([python, "-c", "import sys; print(sys.version.split()[0])"])
        checks.append(
            Check(
                f"{name}: worker Python",
                ran.returncode == 0,
                f"{python} runs as {profile.username}: Python {ran.stdout.strip()}"
                if ran.returncode == 0
                else f"{profile.username} cannot run {python} ({last_line(ran)}): install Python "
                "there, or name one that user can read and run",
            )
        )
    # Without jobs_remote_dir the user's job folders go under the resource's jobs_local_dir.
    folder = profile.jobs_remote_dir or resource.jobs_local_dir
    which = (
        "jobs_remote_dir" if profile.jobs_remote_dir else "no jobs_remote_dir, so jobs_local_dir"
    )
    writable = await as_user(["test", "-d", folder, "-a", "-w", folder])
    checks.append(
        Check(
            f"{name}: jobs folder",
            writable.returncode == 0,
            f"{profile.username} can write {folder} ({which})"
            if writable.returncode == 0
            else f"{profile.username} cannot write {folder} ({which}): create it and give it "
            "to that user, or set the profile's jobs_remote_dir to a folder of theirs",
        )
    )
    return checks
