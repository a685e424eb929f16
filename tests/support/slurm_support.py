"""Helpers for tests against the real local SLURM cluster (scripts/slurm-dev-cluster.sh).

Jobs run under test Unix users' uids, so every path a job touches must be reachable by
that user: pytest's tmp_path (0700, under /tmp/pytest-of-root) is not; `shared_dir` is.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ALICE = "fl-slurm-alice"
BOB = "fl-slurm-bob"

# Every state in which SLURM is done with a job (squeue's long names).
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

# One lock for all xdist workers: concurrent useradd calls fail on /etc/passwd's lock.
_USERADD_LOCK = Path(tempfile.gettempdir()) / ".fractal-like-test-users.lock"


def ensure_unix_user(name: str) -> tuple[int, int]:
    """Create the Unix user `name` if it does not exist (needs root); its (uid, gid)."""
    with _USERADD_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                ["useradd", "--create-home", "--shell", "/bin/sh", name],
                check=True,
                capture_output=True,
                stdin=subprocess.DEVNULL,
            )
            entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def shared_dir(name: str = "test") -> Path:
    """A new folder under /tmp that every user can traverse (0755, as /tmp itself is)."""
    path = Path(tempfile.mkdtemp(prefix=f"fl-slurm-{name}-", dir="/tmp"))
    path.chmod(0o755)  # mkdtemp makes it 0700
    return path


def remove_shared_dir(path: Path) -> None:
    """Remove a `shared_dir` folder, including what test users' jobs wrote into it."""
    shutil.rmtree(path, ignore_errors=True)


def user_owned_dir(path: Path, user: str) -> Path:
    """Make `path` (parents must exist) a 0755 folder owned by `user`; returns it."""
    entry = pwd.getpwnam(user)
    path.mkdir(exist_ok=True)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o755)
    return path


def slurm_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables a SLURM client needs: SLURM_CONF from this process, plus `env`."""
    merged: dict[str, str] = {}
    if "SLURM_CONF" in os.environ:
        merged["SLURM_CONF"] = os.environ["SLURM_CONF"]
    merged.update(env or {})
    return merged


def run_as(
    user: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    cwd: str | Path = "/",
    timeout: float = 60,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` as `user` through sudo, with SLURM_CONF and `env` passed explicitly.

    sudo resets the environment (SLURM_CONF included), hence `env NAME=value ...`.
    The default cwd "/" is one every user may enter; sbatch also uses it as the job's
    working directory unless --chdir says otherwise. `stdin` is fed to the command.
    """
    assignments = [f"{key}={value}" for key, value in slurm_env(env).items()]
    return subprocess.run(
        ["sudo", "-n", "-u", user, "env", *assignments, *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        input=stdin if stdin is not None else "",
    )


def sbatch_as(user: str, args: Sequence[str], script: str) -> int:
    """Submit `script` (a shell script's text) as `user`; the job id. Fails loudly."""
    result = run_as(user, ["sbatch", "--parsable", *args], stdin=script)
    if result.returncode != 0:
        raise AssertionError(f"sbatch as {user} failed ({result.returncode}): {result.stderr}")
    # --parsable prints "ID" or "ID;cluster".
    return int(result.stdout.strip().split(";")[0])


_FIELD = re.compile(r"(\w+)=(\S*)")


def job_fields(job_id: int | str) -> dict[str, str] | None:
    """scontrol's view of a job as a dict, or None once the controller has forgotten it."""
    result = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", str(job_id)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **slurm_env()},
    )
    if result.returncode != 0:
        if "Invalid job id" in result.stderr:
            return None
        raise AssertionError(f"scontrol show job {job_id} failed: {result.stderr}")
    return dict(_FIELD.findall(result.stdout))


def sacct_c(job_id: int | str) -> tuple[str, str] | None:
    """(state, exit code) of a finished job from the job-completion file (`sacct -c`).

    Array tasks are listed there under their raw job ids (scontrol's JobId), not "A_T".
    Only root can run it here: sacct -c opens the file for appending.
    """
    result = subprocess.run(
        ["sacct", "-c", "-n", "-P", "-j", str(job_id), "-o", "JobID,State,ExitCode"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **slurm_env()},
    )
    if result.returncode != 0:
        raise AssertionError(f"sacct -c -j {job_id} failed: {result.stderr}")
    for line in result.stdout.splitlines():
        fields = line.split("|")
        if len(fields) == 3 and fields[0] == str(job_id):
            return fields[1].split()[0], fields[2]  # "CANCELLED by 0" -> "CANCELLED"
    return None


def wait_for_slurm_job(job_id: int | str, timeout: float = 60) -> tuple[str, str]:
    """Poll until the job reaches a final state; (state, exit code as SLURM's "code:signal").

    The exit code stays a string because the signal part matters: an out-of-memory kill
    is "0:9", a plain `exit 3` is "3:0".
    """
    deadline = time.monotonic() + timeout
    last = "unknown"
    while True:
        fields = job_fields(job_id)
        if fields is None:
            # Forgotten by the controller (older than MinJobAge): ask the completion file.
            finished = sacct_c(job_id)
            if finished is not None:
                return finished
        else:
            last = fields.get("JobState", "unknown")
            if last in FINAL_STATES:
                return last, fields.get("ExitCode", "")
        if time.monotonic() > deadline:
            raise TimeoutError(f"SLURM job {job_id} still {last} after {timeout} s")
        time.sleep(0.2)


def has_accounting() -> bool:
    """Whether the cluster keeps accounting (slurmdbd): sacctmgr answers."""
    result = subprocess.run(
        ["sacctmgr", "-n", "-P", "show", "cluster"],
        env=slurm_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def associate(user: str, accounts: Sequence[str]) -> None:
    """Make SLURM associate these accounts with the cluster user (creating the accounts).

    Without accounting there are no associations, and nothing checks accounts: a no-op."""
    if not accounts or not has_accounting():
        return
    for command in (
        ["add", "account", ",".join(accounts)],
        ["add", "user", user, f"accounts={','.join(accounts)}"],
    ):
        result = subprocess.run(
            ["sacctmgr", "-i", *command],
            env=slurm_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        # "Nothing new added" is sacctmgr's answer when they exist already.
        if result.returncode != 0 and "Nothing new" not in result.stdout + result.stderr:
            raise AssertionError(f"sacctmgr {' '.join(command)}: {result.stderr}")
