"""SLURM commands through a cluster host: over SSH as a non-root user against the real
cluster, and through sudo on this machine (cluster_host.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fractal_like.runner.slurm.cluster_host import (
    ClusterHostError,
    LocalSudoHost,
    SshClusterHost,
)
from fractal_like.runner.slurm.commands import SlurmCommandError, SlurmCommands, SlurmReader
from fractal_like.runner.slurm.ssh_host import SshHostRegistry
from fractal_like.runner.unit_env import unit_environment

from ..support.slurm_support import FINAL_STATES, job_fields, user_owned_dir
from ..support.ssh_support import SshServer


@pytest.fixture
def ssh_folder(slurm_shared_dir: Path, ssh_server: SshServer) -> Path:
    """A folder the SSH user owns, on the file system the cluster's node sees."""
    return user_owned_dir(slurm_shared_dir / "alice", ssh_server.user)


async def _final_state(reader: SlurmReader, job_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        info = await reader.job_info(job_id)
        if info is not None and info.state in FINAL_STATES:
            return info.state
        assert time.monotonic() < deadline, f"job {job_id} still {info} after {timeout} s"
        await asyncio.sleep(0.3)


def test_sbatch_squeue_and_output_over_ssh(
    slurm_conf: str, ssh_server: SshServer, ssh_folder: Path
) -> None:
    async def scenario() -> None:
        registry = SshHostRegistry()
        host = SshClusterHost(registry.host(ssh_server.target()), {"SLURM_CONF": slurm_conf})
        commands = SlurmCommands(ssh_server.user, slurm_conf=slurm_conf, host=host)
        reader = SlurmReader(host)
        try:
            folder = f"{ssh_folder}/job-1/task-0"
            await commands.mkdir(folder)
            script = f"{folder}/hello.sh"
            await host.write_text(script, '#!/bin/sh\necho "hello from $(id -un)"\n')
            output = f"{folder}/hello.out"
            job_id = await commands.sbatch(
                ["sbatch", "--parsable", f"--output={output}", f"--chdir={folder}", script]
            )
            assert job_id in await reader.squeue([job_id])
            assert job_fields(job_id)["UserId"].startswith(ssh_server.user)
            assert await _final_state(reader, job_id) == "COMPLETED"
            assert await host.exists(output)
            assert await host.read_text(output) == f"hello from {ssh_server.user}\n"
            assert registry.connects == 1  # every step over the one connection
        finally:
            await registry.close()

    asyncio.run(scenario())


def test_scancel_over_ssh(slurm_conf: str, ssh_server: SshServer, ssh_folder: Path) -> None:
    async def scenario() -> None:
        registry = SshHostRegistry()
        host = SshClusterHost(registry.host(ssh_server.target()), {"SLURM_CONF": slurm_conf})
        commands = SlurmCommands(ssh_server.user, slurm_conf=slurm_conf, host=host)
        reader = SlurmReader(host)
        try:
            script = f"{ssh_folder}/sleep.sh"
            await host.write_text(script, "#!/bin/sh\nsleep 300\n")
            job_id = await commands.sbatch(
                ["sbatch", "--parsable", "--output=/dev/null", f"--chdir={ssh_folder}", script]
            )
            deadline = time.monotonic() + 30
            while (await reader.squeue([job_id])).get(job_id) not in ("RUNNING", "PENDING"):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
            await commands.scancel([job_id])
            assert await _final_state(reader, job_id) == "CANCELLED"
        finally:
            await registry.close()

    asyncio.run(scenario())


def test_sbatch_refusal_and_lost_host_are_slurm_errors(
    slurm_conf: str, ssh_server: SshServer, ssh_folder: Path
) -> None:
    async def scenario() -> None:
        registry = SshHostRegistry()
        host = SshClusterHost(registry.host(ssh_server.target()), {"SLURM_CONF": slurm_conf})
        commands = SlurmCommands(ssh_server.user, slurm_conf=slurm_conf, host=host)
        try:
            script = f"{ssh_folder}/x.sh"
            await host.write_text(script, "#!/bin/sh\ntrue\n")
            with pytest.raises(SlurmCommandError, match="invalid partition"):
                await commands.sbatch(["sbatch", "--parsable", "--partition=nope", script])
            with pytest.raises(ClusterHostError, match="cannot create"):
                await commands.mkdir("/root/not-yours")
        finally:
            await registry.close()
        with pytest.raises(ValueError, match="logs in as"):
            SlurmCommands("fl-someone-else", host=host)

    asyncio.run(scenario())


def test_local_sudo_host_files_as_the_user(
    slurm_user: tuple[str, int, int], ssh_folder: Path
) -> None:
    name, uid, _ = slurm_user

    async def scenario() -> None:
        host = LocalSudoHost(name, unit_environment(account=name))
        folder = f"{ssh_folder}/local/a"
        await host.mkdir(folder)
        assert Path(folder).stat().st_uid == uid
        await host.write_text(f"{folder}/f.txt", "as the user\n")
        assert Path(f"{folder}/f.txt").stat().st_uid == uid
        assert await host.read_text(f"{folder}/f.txt") == "as the user\n"
        assert await host.exists(f"{folder}/f.txt") and not await host.exists(f"{folder}/g")
        with pytest.raises(ClusterHostError, match="cannot read"):
            await host.read_text(f"{folder}/g")
        assert (await host.run(["id", "-un"])).stdout.strip() == name

    asyncio.run(scenario())
