"""The SSH transport (runner/slurm/ssh_host.py) against a real sshd on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fractal_like.runner.slurm.ssh_host import (
    SshCommandTimeoutError,
    SshConnectionLostError,
    SshHostKeyError,
    SshHostRegistry,
    SshKeyRefusedError,
    SshRemoteFileError,
    SshUnreachableError,
)

from ..support.slurm_support import remove_shared_dir, shared_dir, user_owned_dir
from ..support.ssh_support import SshServer, free_port, make_key


@pytest.fixture
def user_folder(ssh_server: SshServer) -> Iterator[Path]:
    """A fresh folder the SSH user owns (the files' tests write there)."""
    base = shared_dir("ssh-files")
    yield user_owned_dir(base / "home", ssh_server.user)
    remove_shared_dir(base)


def _running(pattern: str) -> bool:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0


async def _wait_disconnected(registry: SshHostRegistry, server: SshServer) -> None:
    """Until the client has seen the connection drop (EOF arrives within milliseconds)."""
    target = server.target()
    deadline = time.monotonic() + 10
    while registry.is_connected(target):
        assert time.monotonic() < deadline, "the client did not notice the dropped connection"
        await asyncio.sleep(0.05)


def test_run_reads_output_and_exit_code(ssh_server: SshServer) -> None:
    async def scenario() -> None:
        registry = SshHostRegistry()
        host = registry.host(ssh_server.target())
        try:
            result = await host.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
            assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
            assert (await host.run(["id", "-un"])).stdout.strip() == ssh_server.user
            # Every item reaches the remote side as one literal word, never shell syntax.
            tricky = ["$HOME", "a b", "x; touch /tmp/fl-pwned", "`id`", "'q'"]
            echoed = await host.run(["printf", "%s\\n", *tricky])
            assert echoed.stdout.splitlines() == tricky
            assert not Path("/tmp/fl-pwned").exists()
            assert (await host.run(["cat"], stdin="fed\n")).stdout == "fed\n"
            assert registry.connects == 1  # one connection for all of them
        finally:
            await registry.close()

    asyncio.run(scenario())


def test_files_round_trip_over_sftp(
    ssh_server: SshServer, user_folder: Path, tmp_path: Path
) -> None:
    uid = pwd.getpwnam(ssh_server.user).pw_uid

    async def scenario() -> None:
        registry = SshHostRegistry()
        host = registry.host(ssh_server.target())
        try:
            nested = user_folder / "a" / "b" / "c"
            assert not await host.exists(str(nested))
            await host.mkdir(str(nested))
            await host.mkdir(str(nested))  # already there: fine
            assert await host.exists(str(nested))
            assert nested.stat().st_uid == uid and nested.stat().st_mode & 0o777 == 0o755

            text = "ünïcode line\nsecond\n"
            await host.write_text(str(nested / "note.txt"), text)
            assert await host.read_text(str(nested / "note.txt")) == text
            assert (nested / "note.txt").stat().st_uid == uid
            assert sorted(os.listdir(nested)) == ["note.txt"]  # no partial file left

            local = tmp_path / "payload.bin"
            local.write_bytes(os.urandom(300_000))
            await host.put(local, str(nested / "payload.bin"))
            back = tmp_path / "back.bin"
            await host.get(str(nested / "payload.bin"), back)
            assert back.read_bytes() == local.read_bytes()

            with pytest.raises(SshRemoteFileError, match=r"missing\.txt"):
                await host.read_text(str(nested / "missing.txt"))
            with pytest.raises(SshRemoteFileError, match="/root"):
                await host.mkdir("/root/fl-not-allowed")
            with pytest.raises(SshRemoteFileError):
                await host.mkdir(str(user_folder / "x" / "y"), parents=False)
        finally:
            await registry.close()

    asyncio.run(scenario())


def test_many_concurrent_commands_share_one_connection(ssh_server: SshServer) -> None:
    async def scenario() -> None:
        registry = SshHostRegistry()
        host = registry.host(ssh_server.target())
        try:
            started = time.monotonic()
            results = await asyncio.gather(
                *(host.run(["sh", "-c", f"sleep 1; echo {n}"]) for n in range(24))
            )
            elapsed = time.monotonic() - started
            assert [result.stdout.strip() for result in results] == [str(n) for n in range(24)]
            assert registry.connects == 1
            # 8 channels at a time: 3 rounds of 1 s, where one after another takes 24 s.
            assert elapsed < 12, elapsed
        finally:
            await registry.close()

    asyncio.run(scenario())


def test_channels_beyond_max_sessions_wait_and_run(ssh_server: SshServer) -> None:
    """sshd opens at most 10 sessions per connection (MaxSessions): a channel it refuses has
    not run anything, so it is opened again a moment later."""

    async def scenario() -> None:
        registry = SshHostRegistry(max_channels=14)
        host = registry.host(ssh_server.target())
        try:
            results = await asyncio.gather(
                *(host.run(["sh", "-c", f"sleep 1; echo {n}"]) for n in range(14))
            )
            assert [result.stdout.strip() for result in results] == [str(n) for n in range(14)]
            assert registry.connects == 1
        finally:
            await registry.close()

    asyncio.run(scenario())


def test_dropped_connection_is_opened_again(ssh_server: SshServer) -> None:
    async def scenario() -> None:
        registry = SshHostRegistry()
        host = registry.host(ssh_server.target())
        try:
            assert (await host.run(["echo", "one"])).stdout == "one\n"
            assert ssh_server.drop_connections() >= 1
            await _wait_disconnected(registry, ssh_server)
            assert (await host.run(["echo", "two"])).stdout == "two\n"
            assert registry.connects == 2

            # A query issued right after the drop is retried once on a new connection.
            ssh_server.drop_connections()
            assert (await host.run(["echo", "three"], idempotent=True)).stdout == "three\n"
            assert await host.exists("/tmp")

            # A command under way when the connection drops is not run again: it fails.
            running = asyncio.create_task(host.run(["sleep", "30"]))
            await asyncio.sleep(1.0)
            ssh_server.drop_connections()
            with pytest.raises(SshConnectionLostError, match="was lost while running sleep"):
                await asyncio.wait_for(running, 10)
            assert (await host.run(["echo", "four"])).stdout == "four\n"
        finally:
            await registry.close()

    asyncio.run(scenario())


def test_command_timeout(ssh_server: SshServer) -> None:
    async def scenario() -> None:
        registry = SshHostRegistry()
        host = registry.host(ssh_server.target())
        try:
            started = time.monotonic()
            with pytest.raises(SshCommandTimeoutError, match="did not end within"):
                await host.run(["sleep", "3131"], timeout=0.5)
            assert time.monotonic() - started < 5
            # The command was stopped on the host, not left running.
            deadline = time.monotonic() + 5
            while _running("sleep 3131"):
                assert time.monotonic() < deadline, "the timed-out command still runs"
                await asyncio.sleep(0.1)
            assert (await host.run(["echo", "still"])).stdout == "still\n"  # same connection
            assert registry.connects == 1
        finally:
            await registry.close()

    asyncio.run(scenario())


def test_wrong_key_is_refused_quickly(ssh_server: SshServer, tmp_path: Path) -> None:
    stranger = make_key(tmp_path / "stranger_key")

    async def scenario() -> None:
        registry = SshHostRegistry(connect_attempts=3)
        host = registry.host(ssh_server.target(key_path=str(stranger)))
        started = time.monotonic()
        with pytest.raises(SshKeyRefusedError) as refused:
            await host.run(["true"])
        assert time.monotonic() - started < 5  # a refusal is not retried
        assert ssh_server.user in str(refused.value) and str(stranger) in str(refused.value)
        missing = registry.host(ssh_server.target(key_path=str(tmp_path / "nope")))
        with pytest.raises(SshKeyRefusedError, match="cannot be read"):
            await missing.run(["true"])
        assert registry.connects == 0

    asyncio.run(scenario())


def test_silent_or_closed_port_is_unreachable(ssh_server: SshServer) -> None:
    async def scenario(port: int) -> tuple[str, float]:
        registry = SshHostRegistry(connect_timeout=1.0, connect_attempts=2, backoff=0.1)
        host = registry.host(ssh_server.target(port=port))
        started = time.monotonic()
        with pytest.raises(SshUnreachableError) as unreachable:
            await host.run(["true"])
        return str(unreachable.value), time.monotonic() - started

    # A socket that accepts connections and never says a word.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        message, elapsed = asyncio.run(scenario(port))
    assert f"127.0.0.1:{port}" in message and "tried 2 times" in message
    assert 1.0 < elapsed < 6, elapsed  # two attempts of 1 s and a short pause

    closed = free_port()
    message, elapsed = asyncio.run(scenario(closed))
    assert f"127.0.0.1:{closed}" in message and elapsed < 3


def test_host_key_mismatch_is_refused(ssh_server: SshServer, tmp_path: Path) -> None:
    impostor = make_key(tmp_path / "other_host_key")
    public = Path(f"{impostor}.pub").read_text().split()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{ssh_server.port} {public[0]} {public[1]}\n")

    async def scenario() -> None:
        registry = SshHostRegistry()
        for accept_new in (False, True):  # a known host with another key: never accepted
            host = registry.host(ssh_server.target(known_hosts=str(wrong), accept_new=accept_new))
            with pytest.raises(SshHostKeyError, match=f"127.0.0.1:{ssh_server.port}"):
                await host.run(["true"])
        unknown = registry.host(ssh_server.target(known_hosts=str(tmp_path / "empty")))
        with pytest.raises(SshHostKeyError):
            await unknown.run(["true"])  # not listed and no accept-new: refused too
        assert registry.connects == 0

    asyncio.run(scenario())


def test_accept_new_stores_the_host_key(ssh_server: SshServer, tmp_path: Path) -> None:
    store = tmp_path / "learned" / "known_hosts"

    async def scenario() -> None:
        registry = SshHostRegistry()
        host = registry.host(ssh_server.target(known_hosts=str(store), accept_new=True))
        try:
            assert (await host.run(["echo", "hi"])).stdout == "hi\n"
        finally:
            await registry.close()

    asyncio.run(scenario())
    learned = store.read_text().split()
    expected = ssh_server.known_hosts.read_text().split()
    assert learned[:3] == expected[:3]
    asyncio.run(scenario())  # known now: checked, not added twice
    assert len(store.read_text().splitlines()) == 1
