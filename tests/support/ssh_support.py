"""A real OpenSSH server on 127.0.0.1 for the slurm_ssh tests (Debian's openssh-server).

Each server runs `/usr/sbin/sshd -D` on a free port with a configuration, a host key and a
user key made here, and lets in only the test user with that key. The authorized keys live
in the server's own folder (AuthorizedKeysFile, StrictModes no): the user's home stays
untouched. Needs root (sshd and the test user).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fractal_like.runner.slurm.ssh_host import SshTarget

from .slurm_support import _USERADD_LOCK, ensure_unix_user

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_key(path: Path) -> Path:
    """A new ed25519 key pair at `path` (and `path`.pub), without passphrase."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def allow_key_login(user: str) -> None:
    """Create `user` if needed; a locked password ("!", useradd's default) makes sshd refuse
    every login, so it becomes "*" (no password, not locked)."""
    ensure_unix_user(user)
    with _USERADD_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shadow = Path("/etc/shadow").read_text().splitlines()
        entry = next((line for line in shadow if line.startswith(f"{user}:")), "")
        if entry.split(":")[1:2] != ["*"]:
            subprocess.run(["usermod", "-p", "*", user], check=True, capture_output=True)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@dataclass
class SshServer:
    folder: Path
    port: int
    user: str
    user_key: Path
    known_hosts: Path
    process: subprocess.Popen[bytes]

    def target(self, **changes: object) -> SshTarget:
        values: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "key_path": str(self.user_key),
            "known_hosts": str(self.known_hosts),
        }
        values.update(changes)
        return SshTarget(**values)  # type: ignore[arg-type]

    def sessions(self) -> list[int]:
        """The sshd processes serving connections (the listener's children)."""
        return _children(self.process.pid)

    def drop_connections(self) -> int:
        """SIGKILL every process serving a connection (and theirs): the clients see the
        connection drop, the listener stays. How many connections there were."""
        sessions = self.sessions()
        for pid in sessions:
            for child in _children(pid):
                _kill(child)
            _kill(pid)
        return len(sessions)

    def log(self) -> str:
        path = self.folder / "sshd.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        self.drop_connections()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.kill(pid, signal.SIGKILL)


def start_sshd(folder: Path, user: str) -> SshServer:
    """sshd on a free port of 127.0.0.1 letting `user` in with a key made here.

    `folder` must be traversable by `user`: sshd reads the authorized keys as that user.
    """
    allow_key_login(user)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    host_key = make_key(folder / "host_key")
    user_key = make_key(folder / "user_key")
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "user_key.pub").read_text())
    authorized.chmod(0o644)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                f"AllowUsers {user}",
                "Subsystem sftp internal-sftp",
                "MaxStartups 50",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    known_hosts = folder / "known_hosts"
    public = (folder / "host_key.pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    with (folder / "sshd.log").open("ab") as log:
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    server = SshServer(folder, port, user, user_key, known_hosts, process)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited ({process.returncode}): {server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                if probe.recv(64).startswith(b"SSH-"):
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"sshd did not answer on port {port}: {server.log()}")
        time.sleep(0.1)


def key_refused_after_save(server: SshServer, path: Path) -> tuple[Path, Callable[[], None]]:
    """A copy of the server's user key at `path` (a profile saved with it passes the setup
    checks) and a function that swaps it for a key the server refuses: how a key that
    breaks later (revoked, rotated) is tested."""
    shutil.copyfile(server.user_key, path)
    path.chmod(0o600)

    def break_it() -> None:
        stranger = make_key(path.with_name(path.name + "-stranger"))
        os.replace(stranger, path)

    return path, break_it
