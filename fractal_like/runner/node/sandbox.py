"""Keep units away from the server's own files and process (Linux Landlock, prctl).

STDLIB ONLY, Python 3.9 syntax, no relative imports: part of the node package (the worker
imports it), run alone by path around pip (`services/collection/venv.py`), and imported by
the runner.

On a `local` resource without a `username`, units run as the server's Unix account, so file
permissions cannot keep them from the JWT secret or the SQLite database. The launcher
therefore restricts itself with Landlock (Linux >= 5.19, ABI 2, unprivileged) right after
reading its batch, before any unit starts; the units and warm parents it starts inherit the
restriction, and nothing can lift it. Landlock is an allow-list of file hierarchies, so
denying a few paths means allowing everything else: every entry beside each folder on the
way from `/` to a denied path gets every right, and those folders themselves only listing.
Consequences, documented for admins: a unit cannot create new entries directly in the
folders above a denied path (keep the data folder out of /tmp), nor in what was created
there after its launcher started, and setuid programs do not raise a unit's privileges
(Landlock needs no_new_privs).

A Landlock domain also stops its processes from attaching to (ptrace, `/proc/<pid>/mem`)
any process outside it, the runner and server among them, and, from ABI 6 on, from sending
them signals. It does not stop reading `/proc/<pid>/environ` of a process of the same
account: the runner makes itself undumpable for that (`make_undumpable`), which only
CAP_SYS_PTRACE, CAP_SYS_ADMIN or CAP_PERFMON override; a launcher that has them (a server
run as root) drops them from what its units can ever have.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from collections.abc import Iterable

MIN_ABI = 2  # ABI 1 refuses every rename or link across folders (EXDEV): tasks break

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
# What lets a process read an undumpable one's /proc/<pid>/environ (checked on Linux 6.18).
_CAP_SYS_PTRACE, _CAP_SYS_ADMIN, _CAP_PERFMON = 19, 21, 38

# Filesystem access rights (linux/landlock.h).
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
_ABI1_RIGHTS = (1 << 13) - 1  # EXECUTE ... MAKE_SYM
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # what a file may get
_SCOPE_SIGNAL = 1 << 1  # ABI 6


class SandboxUnavailableError(OSError):
    """This kernel cannot restrict us (no Landlock, or too old an ABI)."""


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    return libc


def _check(result: int, what: str) -> int:
    if result < 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")
    return result


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is switched off)."""
    try:
        libc = _libc()
    except OSError:
        return 0
    result = libc.syscall(
        ctypes.c_long(_SYS_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_CREATE_RULESET_VERSION),
    )
    return int(result) if result > 0 else 0


def make_undumpable() -> None:
    """Other processes of our account may no longer read our memory or /proc/<pid>/environ
    (nor attach a debugger): they would need CAP_SYS_PTRACE. Children that exec start afresh."""
    _check(_libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")


def drop_inspection_capabilities() -> None:
    """Programs started from now on never get the capabilities that read an undumpable
    process's memory or environment, even as root. Nothing to do without CAP_SETPCAP (not
    root): then there are none of them to pass on either."""
    libc = _libc()
    for capability in (_CAP_SYS_PTRACE, _CAP_SYS_ADMIN, _CAP_PERFMON):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) < 0:
            number = ctypes.get_errno()
            if number not in (errno.EPERM, errno.EINVAL):  # EINVAL: an older kernel's list
                raise OSError(number, f"prctl(PR_CAPBSET_DROP): {os.strerror(number)}")


def confine(paths: Iterable[str]) -> str | None:
    """Everything the launcher does to itself before its first unit (see the module's
    docstring); None when done, else plain words saying what this kernel could not do."""
    drop_inspection_capabilities()
    try:
        deny_paths(paths)
    except SandboxUnavailableError as error:
        return f"the server's files are not hidden from units: {error.strerror}"
    return None


def _handled_rights(abi: int) -> int:
    rights = _ABI1_RIGHTS | REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def _ancestors(path: str) -> list[str]:
    """The folders above `path`, from its parent up to `/`."""
    found: list[str] = []
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return found
        found.append(parent)
        path = parent


def _grants(private: set[str]) -> list[tuple[str, bool]]:
    """(path, is_folder) pairs that get every right: every entry beside the way down to a
    private path. Symbolic links get no rule: access goes by where they point."""
    ancestors: set[str] = set()
    for path in private:
        ancestors.update(_ancestors(path))
    if not ancestors:
        return [("/", True)]
    grants = []
    for folder in sorted(ancestors):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # a folder we cannot list: what is in it stays out of reach
        for entry in entries:
            if entry.path in ancestors or entry.path in private or entry.is_symlink():
                continue
            try:
                grants.append((entry.path, entry.is_dir(follow_symlinks=False)))
            except OSError:
                continue
    return grants


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return  # gone meanwhile: nothing to allow
    try:
        attr = ctypes.create_string_buffer(struct.pack("<Qi", rights, fd), 12)
        _check(
            libc.syscall(
                ctypes.c_long(_SYS_ADD_RULE),
                ctypes.c_int(ruleset),
                ctypes.c_int(_RULE_PATH_BENEATH),
                attr,
                ctypes.c_uint32(0),
            ),
            f"landlock_add_rule({path})",
        )
    finally:
        os.close(fd)


def deny_paths(paths: Iterable[str], abi: int | None = None) -> int:
    """Restrict this process (and all it starts from now on) from every access to `paths`
    and what lies beneath them, and from ptrace-ing processes outside. Returns the ABI used.

    Raises SandboxUnavailableError when the kernel cannot do it, OSError on any other failure
    (then nothing was restricted)."""
    abi = landlock_abi() if abi is None else abi
    if abi < MIN_ABI:
        raise SandboxUnavailableError(
            0, f"Landlock ABI {MIN_ABI} (Linux 5.19) is needed, this kernel has {abi or 'none'}"
        )
    libc = _libc()
    handled = _handled_rights(abi)
    private = {os.path.realpath(path) for path in paths}
    fields = [handled, 0, _SCOPE_SIGNAL] if abi >= 6 else [handled, 0] if abi >= 4 else [handled]
    attr = ctypes.create_string_buffer(struct.pack(f"<{len(fields)}Q", *fields), 8 * len(fields))
    ruleset = _check(
        libc.syscall(
            ctypes.c_long(_SYS_CREATE_RULESET),
            attr,
            ctypes.c_size_t(8 * len(fields)),
            ctypes.c_uint32(0),
        ),
        "landlock_create_ruleset",
    )
    try:
        # Listing every folder is harmless, and needed to walk down to the allowed entries.
        _add_rule(libc, ruleset, "/", READ_DIR)
        for path, is_folder in _grants(private):
            _add_rule(libc, ruleset, path, handled if is_folder else handled & _FILE_RIGHTS)
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        _check(
            libc.syscall(
                ctypes.c_long(_SYS_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)
            ),
            "landlock_restrict_self",
        )
    finally:
        os.close(ruleset)
    return abi


def creation_blocked_in(folder: str, paths: Iterable[str]) -> bool:
    """Whether a process confined from `paths` can create nothing in `folder`: it lies on
    the way down to one of them (e.g. /tmp above a data folder in /tmp)."""
    prefix = os.path.realpath(folder).rstrip("/") + "/"
    return any(os.path.realpath(path).startswith(prefix) for path in paths)


def main(argv: list[str]) -> int:
    """`python -I -S sandbox.py PRIVATE... -- PROGRAM ARG...`: run PROGRAM confined from the
    PRIVATE paths (task collection's pip, which runs a package's build scripts)."""
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        sys.stderr.write("usage: sandbox.py PRIVATE_PATH... -- PROGRAM [ARG...]\n")
        return 2
    split = argv.index("--")
    problem = confine(argv[1:split])
    if problem:
        sys.stderr.write(f"fractal-like: {problem}\n")
    command = argv[split + 1 :]
    os.execvp(command[0], command)
    return 127  # not reached: execvp replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv))
