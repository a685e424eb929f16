"""Commands and files on a cluster's login node over SSH (the slurm_ssh transport).

Built on asyncssh: pure-Python asyncio, so the runner's event loop drives it directly (no
thread, no subprocess per command); one TCP connection per target carries many channels at
once (each command one channel, SFTP one more) and SSH keepalives. OpenSSH's client with
ControlMaster would spawn a process per command and leave a master socket to supervise;
paramiko is blocking and would need a thread per call.

`SshHostRegistry` keeps one live connection per `SshTarget`, shared by every caller: opened
on first use, opened again after it drops (keepalive, EOF or a failed call notice it), with a
bounded retry and backoff when connecting. `SshHost` is what callers use: `run` a command
(argv quoted with shlex.join: nothing reaches the remote shell unquoted) and SFTP file
operations. Every failure is an `SshError` subclass with a plain sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .process import COMMAND_TIMEOUT_SECONDS, CommandResult

with warnings.catch_warnings():
    # asyncssh's import names cryptography's DSA classes (deprecated there; we use no DSA
    # key): without this, every process that loads the SLURM runner warns on stderr.
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    import asyncssh

logger = logging.getLogger(__name__)
T = TypeVar("T")

HOST_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,253}$")
CHANNEL_OPEN_RETRIES = 5  # 0.1 s to 1.6 s apart: about 3 s in all
USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")


class SshError(RuntimeError):
    """Something on the SSH side failed; the message says what, in plain words."""


class SshUnreachableError(SshError):
    """The host did not answer (refused, timed out, no route, name unknown)."""


class SshKeyRefusedError(SshError):
    """The host refused the user's key (or the key cannot be read)."""


class SshHostKeyError(SshError):
    """The host's key is not the one known for it: refused, never accepted silently."""


class SshConnectionLostError(SshError):
    """The connection dropped while a command or transfer was under way."""


class SshCommandTimeoutError(SshError):
    """A command did not end within its time."""


class SshRemoteFileError(SshError):
    """A file operation on the host failed (missing, not allowed, ...)."""


@dataclass(frozen=True)
class SshTarget:
    """One login: `user` on `host:port` with the private key at `key_path`.

    Host keys are checked against `known_hosts` (a file on the server's side). With
    `accept_new` a host not yet listed there is trusted on first contact and its key stored
    (OpenSSH's StrictHostKeyChecking=accept-new); a listed host presenting another key is
    always refused.
    """

    host: str
    user: str
    key_path: str
    known_hosts: str
    port: int = 22
    accept_new: bool = False

    def __post_init__(self) -> None:
        if not HOST_NAME.match(self.host):
            raise ValueError(f"{self.host!r} is not a valid host name")
        if not USER_NAME.match(self.user):
            raise ValueError(f"{self.user!r} is not a valid user name")
        if not 0 < self.port < 65536:
            raise ValueError(f"{self.port} is not a valid port")
        for name in ("key_path", "known_hosts"):
            if not os.path.isabs(getattr(self, name)):
                raise ValueError(f"{name} must be an absolute path")

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


# asyncssh's ways of saying the connection is gone.
_LOST = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    asyncssh.SFTPConnectionLost,
    BrokenPipeError,
    ConnectionResetError,
)


@dataclass
class _Live:
    """One open connection, its SFTP session (opened on first use) and its channel budget."""

    connection: asyncssh.SSHClientConnection
    channels: asyncio.Semaphore
    sftp: asyncssh.SFTPClient | None = None
    sftp_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def closed(self) -> bool:
        return self.connection.is_closed()

    async def sftp_client(self) -> asyncssh.SFTPClient:
        async with self.sftp_lock:
            if self.sftp is None:
                self.sftp = await self.connection.start_sftp_client()
            return self.sftp


class SshHostRegistry:
    """One live connection per target, shared by every caller of this event loop."""

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        connect_attempts: int = 3,
        backoff: float = 0.5,
        keepalive_interval: float = 15.0,
        keepalive_count_max: int = 3,
        max_channels: int = 8,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.connect_attempts = max(1, connect_attempts)
        self.backoff = backoff
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        # sshd refuses channels beyond MaxSessions (10 by default) per connection: commands
        # wait for one of these instead, one channel is left for SFTP.
        self.max_channels = max_channels
        self._live: dict[SshTarget, _Live] = {}
        self._locks: dict[SshTarget, asyncio.Lock] = {}
        self.connects = 0  # connections opened so far (how often it reconnected)

    def host(self, target: SshTarget) -> SshHost:
        return SshHost(self, target)

    def is_connected(self, target: SshTarget) -> bool:
        live = self._live.get(target)
        return live is not None and not live.closed

    async def live(self, target: SshTarget) -> _Live:
        """The target's open connection, opened (again) if there is none."""
        live = self._live.get(target)
        if live is not None and not live.closed:
            return live
        async with self._locks.setdefault(target, asyncio.Lock()):
            live = self._live.get(target)
            if live is None or live.closed:
                if live is not None:
                    logger.info("SSH connection to %s dropped: opening it again", target.where)
                live = _Live(await self._open(target), asyncio.Semaphore(self.max_channels))
                self._live[target] = live
            return live

    def forget(self, target: SshTarget, live: _Live) -> None:
        """Drop a connection that failed a call, so the next call opens a new one."""
        if self._live.get(target) is live:
            del self._live[target]
        live.connection.close()

    async def close(self) -> None:
        lives = list(self._live.values())
        self._live.clear()
        for live in lives:
            live.connection.close()
        for live in lives:
            await live.connection.wait_closed()

    async def _open(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        """Connect, retrying an unreachable host with backoff; refusals are not retried."""
        delay = self.backoff
        for attempt in range(1, self.connect_attempts + 1):
            try:
                return await self._connect_once(target)
            except SshUnreachableError as error:
                if attempt == self.connect_attempts:
                    raise SshUnreachableError(
                        f"{error} (tried {self.connect_attempts} times)"
                    ) from None
                logger.info("%s; trying again in %.1f s", error, delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _connect_once(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        address = f"{target.host}:{target.port}"
        if not os.access(target.key_path, os.R_OK):
            raise SshKeyRefusedError(
                f"the SSH key {target.key_path} of user {target.user!r} cannot be read"
            )
        if target.accept_new:
            await self._learn_host_key(target)
        elif not os.path.isfile(target.known_hosts):
            raise SshHostKeyError(
                f"cannot check the host key of {address}: {target.known_hosts} does not exist"
                " (list the host there, or accept new hosts)"
            )
        try:
            connection = await asyncio.wait_for(
                asyncssh.connect(
                    target.host,
                    target.port,
                    username=target.user,
                    client_keys=[target.key_path],
                    known_hosts=target.known_hosts,
                    preferred_auth="publickey",
                    agent_path=None,  # the server's own agent and ~/.ssh/config stay out
                    config=None,
                    keepalive_interval=self.keepalive_interval,
                    keepalive_count_max=self.keepalive_count_max,
                    connect_timeout=self.connect_timeout,
                    login_timeout=self.connect_timeout,
                ),
                self.connect_timeout,
            )
        except asyncssh.PermissionDenied:
            raise SshKeyRefusedError(
                f"{address} refused the SSH key {target.key_path} of user {target.user!r}"
            ) from None
        except asyncssh.HostKeyNotVerifiable as error:
            raise SshHostKeyError(
                f"the host key of {address} does not match the one in {target.known_hosts}"
                f" ({error.reason}): refusing to connect"
            ) from None
        except asyncssh.KeyImportError as error:
            raise SshKeyRefusedError(
                f"the SSH key {target.key_path} of user {target.user!r} is not usable: {error}"
            ) from None
        except (OSError, asyncssh.Error) as error:  # TimeoutError is an OSError
            raise SshUnreachableError(
                f"cannot reach {address} over SSH: {_reason(error)}"
            ) from None
        self.connects += 1
        return connection

    async def _learn_host_key(self, target: SshTarget) -> None:
        """Store the host's key in known_hosts on first contact (accept-new)."""
        path = Path(target.known_hosts)
        text = path.read_text() if path.exists() else ""
        if asyncssh.import_known_hosts(text).match(target.host, "", target.port)[0]:
            return  # known: the connection itself checks it
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(target.host, target.port, config=None),
                self.connect_timeout,
            )
        except (OSError, asyncssh.Error) as error:
            raise SshUnreachableError(
                f"cannot reach {target.host}:{target.port} over SSH: {_reason(error)}"
            ) from None
        if key is None:
            raise SshHostKeyError(f"{target.host}:{target.port} presented no host key")
        name = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
        line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as stream:
            stream.write(line)
        logger.info("SSH host key of %s stored in %s (first contact)", name, path)


class SshHost:
    """Commands and files of one target, over the registry's shared connection."""

    def __init__(self, registry: SshHostRegistry, target: SshTarget) -> None:
        self.registry = registry
        self.target = target

    async def run(
        self,
        argv: list[str],
        timeout: float = COMMAND_TIMEOUT_SECONDS,
        *,
        idempotent: bool = False,
        stdin: str | None = None,
    ) -> CommandResult:
        """Run argv on the host as the target's user; its exit code and output.

        A dropped connection is retried once on a new one only for an `idempotent` command
        (a query): another command may have run already, so it fails instead.
        """
        if not argv:
            raise ValueError("no command to run")
        command = shlex.join(argv)

        async def execute(live: _Live) -> CommandResult:
            async with live.channels:
                process = await live.connection.create_process(
                    command,
                    input=stdin,
                    stdin=asyncssh.PIPE if stdin is not None else asyncssh.DEVNULL,
                    encoding="utf-8",
                    errors="replace",
                )
                try:
                    done = await process.wait(timeout=timeout)
                except asyncssh.TimeoutError:
                    # Closing the channel alone leaves the command running on the host.
                    with contextlib.suppress(OSError, asyncssh.Error):
                        process.send_signal("TERM")
                    process.close()
                    raise SshCommandTimeoutError(
                        f"{shlex.join(argv[:6])} did not end within {timeout:.0f} s"
                        f" on {self.target.host}"
                    ) from None
            if done.exit_status is None and done.exit_signal is None:
                # The channel ended without an exit status: the connection went away.
                raise asyncssh.ConnectionLost("the channel closed without an exit status")
            return CommandResult(
                done.returncode if done.returncode is not None else 255,
                str(done.stdout or ""),
                str(done.stderr or ""),
            )

        return await self._call(f"running {argv[0]}", execute, idempotent)

    async def put(self, local: str | Path, remote: str) -> None:
        async def transfer(live: _Live) -> None:
            await (await live.sftp_client()).put(str(local), remote)

        await self._sftp(f"copying {local} to {remote}", transfer, idempotent=False)

    async def get(self, remote: str, local: str | Path) -> None:
        async def transfer(live: _Live) -> None:
            await (await live.sftp_client()).get(remote, str(local))

        await self._sftp(f"copying {remote} from the host", transfer, idempotent=True)

    async def mkdir(self, path: str, *, parents: bool = True, mode: int = 0o755) -> None:
        async def make(live: _Live) -> None:
            sftp = await live.sftp_client()
            attrs = asyncssh.SFTPAttrs(permissions=mode)
            if parents:
                await sftp.makedirs(path, attrs, exist_ok=True)
            else:
                await sftp.mkdir(path, attrs)
            await sftp.chmod(path, mode)  # sftp-server applies the user's umask

        await self._sftp(f"creating {path}", make, idempotent=False)

    async def write_text(self, path: str, text: str) -> None:
        """Write the whole file: into a temporary name, then renamed over `path`, so a reader
        never sees half of it."""

        async def write(live: _Live) -> None:
            sftp = await live.sftp_client()
            partial = f"{path}.part-{uuid.uuid4().hex[:8]}"
            async with sftp.open(partial, "wb") as stream:
                await stream.write(text.encode())
            await sftp.posix_rename(partial, path)

        await self._sftp(f"writing {path}", write, idempotent=False)

    async def read_text(self, path: str) -> str:
        return (await self.read_bytes(path)).decode(errors="replace")

    async def read_bytes(self, path: str, limit: int = -1) -> bytes:
        """The file's bytes; with a `limit`, at most that many (the start of the file)."""

        async def read(live: _Live) -> bytes:
            async with (await live.sftp_client()).open(path, "rb") as stream:
                data = await stream.read(limit)
            # Opened in binary mode, so bytes (asyncssh's annotations say str).
            return data if isinstance(data, bytes) else data.encode()

        return await self._sftp(f"reading {path}", read, idempotent=True)

    async def listdir(self, path: str) -> list[str]:
        """The names in a folder (without . and ..)."""

        async def names(live: _Live) -> list[str]:
            found = await (await live.sftp_client()).listdir(path)
            return [str(name) for name in found if name not in (".", "..")]

        return await self._sftp(f"listing {path}", names, idempotent=True)

    async def exists(self, path: str) -> bool:
        async def check(live: _Live) -> bool:
            return await (await live.sftp_client()).exists(path)

        return await self._sftp(f"looking for {path}", check, idempotent=True)

    async def _sftp(
        self, what: str, operation: Callable[[_Live], Awaitable[T]], idempotent: bool
    ) -> T:
        try:
            return await self._call(what, operation, idempotent)
        except asyncssh.SFTPError as error:
            raise SshRemoteFileError(
                f"{what} on {self.target.host} failed: {error.reason}"
            ) from None
        except OSError as error:  # the local side of put/get
            raise SshRemoteFileError(f"{what} failed: {_reason(error)}") from None

    async def _call(
        self, what: str, operation: Callable[[_Live], Awaitable[T]], idempotent: bool
    ) -> T:
        retried_lost = False
        open_retries = 0
        while True:
            live = await self.registry.live(self.target)
            try:
                return await operation(live)
            except _LOST as error:
                self.registry.forget(self.target, live)
                if idempotent and not retried_lost:
                    retried_lost = True
                    logger.info("SSH connection to %s lost: trying once more", self.target.where)
                    continue
                raise SshConnectionLostError(
                    f"the SSH connection to {self.target.where} was lost while {what}"
                    f" ({_reason(error)})"
                ) from None
            except asyncssh.ChannelOpenError as error:
                # Nothing ran: the channel never opened. A dead connection is opened again;
                # a live one may be at sshd's MaxSessions while closed sessions wind down.
                if live.closed:
                    self.registry.forget(self.target, live)
                if open_retries < CHANNEL_OPEN_RETRIES:
                    open_retries += 1
                    await asyncio.sleep(0.05 * 2**open_retries)
                    continue
                raise SshError(
                    f"{self.target.host} refused a new SSH channel while {what}: {error.reason}"
                ) from None


def _reason(error: BaseException) -> str:
    if isinstance(error, asyncssh.Error):
        return error.reason or type(error).__name__
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
