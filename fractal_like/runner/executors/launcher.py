"""The local launcher: runs one batch of units of a task, N at a time, then exits.

`LocalExecutor` starts it as a process of its own (in its own session). It uses only the
standard library and is run by file path (`python -I -S launcher.py BATCH`), without
importing the application. Each unit then costs one `posix_spawn` from this small
process: no `/bin/sh` wrapper, and no thread, child watcher or file work in the runner's
event loop.

Files. Before starting any unit the launcher writes its own pid to the batch's
`pid_file`. Per unit it writes the args file, opens the log for the unit's stdout and
stderr, and once the unit has ended, before its process is reaped, the exit-code file (one
write of the bare integer: 128 + the signal for a unit killed by a signal, 127/126 like a
shell for a program that cannot start). So while the launcher runs, a unit without an
exit-code file has not finished; once the launcher is gone, a unit without one never will.
Units the launcher kills (a stop, or fail-fast) get no exit-code file: they did not
finish. Three new files per unit, no more: on the shared filesystems of HPC sites, and on
some local ones, creating a file is the costly part of a short unit.

Warm start: with "warm_file" (`warm.py`; null: all cold), a unit whose command is
`<absolute python> <absolute script.py>` runs as a fork of a warm parent: same files,
same exit codes, same log (see warm.py). A script that cannot run warm runs cold. A warm
unit whose parent died while it ran is killed and fails with exit code 125 and a reason.

Memory: with "memory_limit_mb", every unit (and warm parent, whose children inherit it) gets
that limit on its private writable memory (RLIMIT_DATA) as soon as it has started: an
allocation beyond it fails (Python raises MemoryError) instead of the machine swapping.

Environment: the launcher is started with exactly the units' environment (the runner's
allow-list, `unit_env.py`), never the server's, and passes it on: a unit gets that plus its
own "env".

Confinement: with "sandbox_file" (`sandbox.py`), the launcher confines itself once, after
reading its batch and before any unit starts, so that every unit inherits it: Landlock denies
every access to "private_paths" (the server's secret and database files), and the
capabilities that would read the server's memory or environment are dropped. A kernel
without Landlock leaves the files reachable: the launcher says so on stderr and carries on.

Account: run through `sudo -n -u <account>` (a local profile's `username`), the launcher
applies "umask" (0o022) so that the runner, another account, can read what it and the units
write; its batch file then lies in the runner's folder, which it may not delete.

Input: argv[1], the batch file (JSON, deleted once read):
    {"parallelism": P, "fail_fast": bool, "kill_grace": seconds, "pid_file": path,
     "warm_file": path or null, "memory_limit_mb": int or null,
     "sandbox_file": path or null, "private_paths": [path, ...], "umask": int or null,
     "commands": [argv, ...],
     "units": [{"id", "command" (index), "args", "cwd", "env" (extra variables or null),
                "args_file", "output", "log", "exit_code", "stale": [paths]}, ...]}
and stdin, from the runner: a line "stop" (or SIGTERM) kills every unit's process group and
starts no more; end of file (the runner died or is shutting down gracefully) starts no more
units but lets the running ones end and records their exit codes, then the launcher exits.
A runner that takes the job over waits for it (`pid_file`) and runs only what is left.

Output: one JSON line per ended unit on stdout, written in batches (after the freed slots
got new units, at most every REPORT_SECONDS while units run, at once when none does),
    {"id": unit id, "code": exit code or null, "reason": plain words or null,
     "warm": whether it ran from a warm parent}.
Units never started are not reported.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import resource
import select
import shutil
import signal
import sys
import time
from typing import Any

STOPPED = "stopped before it finished"
# Ended units are reported to the runner at most this often (and at once when none runs).
REPORT_SECONDS = 0.25
# What /bin/sh reports for a command it cannot run, kept so a missing program reads the same.
NOT_FOUND, NOT_EXECUTABLE = 127, 126
SIGNAL_BASE = 128  # a unit killed by a signal records 128 + the signal, as a shell does


def _write_small(path: str, text: str) -> None:
    """One write of a few bytes: a reader never sees a partial number as a whole one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Launcher:
    def __init__(self, batch: dict[str, Any]) -> None:
        self.units: list[dict[str, Any]] = batch["units"]
        self.commands: list[list[str]] = batch["commands"]
        self.parallelism = max(1, int(batch["parallelism"]))
        self.fail_fast = bool(batch["fail_fast"])
        self.kill_grace = float(batch["kill_grace"])
        self.next = 0
        self.running: dict[int, dict[str, Any]] = {}  # pid -> unit
        self.signalled: set[int] = set()  # pids we killed: their end is "stopped", not a result
        self.groups: set[int] = set()  # every process group we killed, for a final SIGKILL
        self.stopping = False
        self.stop_requested = False
        self.runner_gone = False
        self.kill_at: float | None = None
        self.cwd = ""
        # The units' environment, which the runner started us with. A plain copy: posix_spawn
        # converts the mapping at every call, and os.environ decodes each entry on the way.
        self.environ = dict(os.environ)
        self.executables: dict[tuple[int, str | None], str | None] = {}
        limit = batch.get("memory_limit_mb")
        self.memory_limit = int(limit) * 1024 * 1024 if limit else None
        self.warm_file: str | None = batch.get("warm_file")
        self.warm: Any = None  # warm.py as a module, loaded when a unit first asks for it
        self.pool: Any = None  # its WarmPool
        self.warm_running: dict[int, dict[str, Any]] = {}  # unit id -> unit, run warm
        self.warm_signalled: set[int] = set()  # warm unit ids we killed
        self.watched: set[int] = set()  # warm parents' event pipes registered with poll
        self.outbox: list[str] = []  # report lines not yet written (see _send_reports)
        self.last_report = 0.0

    # ------------------------------------------------------------ limits

    def _limit(self, pid: int) -> None:
        """Put the units' memory limit on a process just started (soft and hard, so the
        unit cannot lift it). Set right after the start rather than inherited: lowering
        this process's own limit could fail its own allocations."""
        if self.memory_limit is not None:
            with contextlib.suppress(ProcessLookupError):  # it ended already
                resource.prlimit(pid, resource.RLIMIT_DATA, (self.memory_limit, self.memory_limit))

    # ------------------------------------------------------------ starting units

    def _executable(self, index: int, env: dict[str, str]) -> str | None:
        """The program of a command, looked up once per command and PATH (as exec would)."""
        name = self.commands[index][0]
        path = env.get("PATH")
        key = (index, path)
        if key not in self.executables:
            self.executables[key] = name if "/" in name else shutil.which(name, path=path)
        return self.executables[key]

    def _start(self, unit: dict[str, Any]) -> None:
        env = {**self.environ, **unit["env"]} if unit["env"] else self.environ
        argv = [
            *self.commands[unit["command"]],
            "--args-json",
            unit["args_file"],
            "--out-json",
            unit["output"],
        ]
        try:
            for stale in (unit["output"], unit["exit_code"], *unit["stale"]):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
            with open(unit["args_file"], "w") as handle:
                json.dump(unit["args"], handle)
            if self.warm_file and self._start_warm(unit, argv, env):
                return
            if self.stopping or self.runner_gone:
                return  # told to stop while a warm parent was starting: the unit never ran
            if unit["cwd"] != self.cwd:
                os.chdir(unit["cwd"])  # posix_spawn has no cwd of its own; units share one
                self.cwd = unit["cwd"]
            executable = self._executable(unit["command"], env)
            if executable is None:
                raise FileNotFoundError(errno.ENOENT, "command not found", argv[0])
            pid = self._spawn(executable, argv, env, unit)
        except OSError as error:
            self._cannot_start(unit, argv[0], error)
            return
        self.running[pid] = unit
        self._limit(pid)

    def _spawn(self, executable: str, argv: list[str], env: dict[str, str], unit: dict) -> int:
        return os.posix_spawn(
            executable,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (
                    os.POSIX_SPAWN_OPEN,
                    1,
                    unit["log"],
                    os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                    0o666,
                ),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            # Its own process group, so a stop kills the whole tree. Not its own session:
            # the units share the launcher's, so Linux's autogroup scheduling weighs them
            # as one group against other sessions, rather than one group per unit.
            setpgroup=0,
            # Python ignores SIGPIPE; the unit must not inherit that (subprocess resets
            # these too).
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )

    def _start_warm(self, unit: dict[str, Any], argv: list[str], env: dict[str, str]) -> bool:
        """Hand the unit to a warm parent; False when it must run cold instead.

        Raises OSError (e.g. its folder is missing) like a cold start would."""
        command = self.commands[unit["command"]]
        warm = self._warm_module()
        if warm is None or not warm.warm_form(command):
            return False
        try:
            self.pool.submit(unit["id"], argv, unit["cwd"], env, unit["log"])
        except warm.WarmUnavailableError:
            return False  # it runs cold and meets, in its own log, what stopped warm
        self.warm_running[unit["id"]] = unit
        return True

    def _warm_module(self) -> Any:
        """warm.py as a module (loaded by path: this file runs without the package)."""
        if self.warm is None and self.warm_file:
            try:
                module = _load_by_path("fractal_like_warm", self.warm_file)
            except Exception as error:  # an unusable warm.py must not stop the cold path
                sys.stderr.write(f"warm start off: {error}\n")
                self.warm_file = None
                return None
            self.warm = module
            self.pool = module.WarmPool(
                warm_file=self.warm_file,
                should_abort=self._abort_wait,
                on_parent_started=self._limit,  # its children, the units, inherit the limit
            )
        return self.warm

    def _abort_wait(self) -> bool:
        """While a warm parent imports its script: stop waiting when told to stop."""
        self._read_control()
        return self.stopping or self.stop_requested or self.runner_gone

    def _cannot_start(self, unit: dict[str, Any], program: str, error: OSError) -> None:
        """A program that cannot run fails its unit as it would under a shell (127 / 126)."""
        code = NOT_FOUND if isinstance(error, FileNotFoundError) else NOT_EXECUTABLE
        with contextlib.suppress(OSError), open(unit["log"], "a") as log:
            log.write(f"fractal-like: cannot run {program}: {error}\n")
        with contextlib.suppress(OSError):  # then a restart runs it again: it never ran
            _write_small(unit["exit_code"], f"{code}\n")
        self._report(unit, code, None)

    # ------------------------------------------------------------ units ending

    def _reap(self) -> None:
        while True:
            try:
                # WNOWAIT: the exit-code file is written while the process still exists (as a
                # zombie), so "process gone" always implies "exit code recorded".
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            unit = self.running.pop(pid, None)
            if unit is not None:
                self._ended(pid, unit, info)
            _, status = os.waitpid(pid, 0)
            if unit is None and self.pool is not None:
                self.pool.reaped(pid, status)  # a warm parent: the pool reports its units lost

    def _collect_warm(self) -> None:
        """Warm units that started or ended, as their parents report them."""
        if self.pool is None:
            return
        for event in self.pool.collect():
            unit = self.warm_running.get(event.token)
            if unit is None:
                continue
            if event.kind == "started":
                if self.stopping:  # started after the stop went out: it goes too
                    self._kill_warm(event.token, signal.SIGTERM)
                continue
            del self.warm_running[event.token]
            killed_by_us = event.token in self.warm_signalled
            self.warm_signalled.discard(event.token)
            if killed_by_us and event.kind != "lost":  # lost: its parent died, say so
                self._report(unit, None, STOPPED, warm=True)
                continue
            code = event.code if event.code is not None else self.warm.LOST_EXIT_CODE
            _write_small(unit["exit_code"], f"{code}\n")
            reason = event.reason
            if reason is None and event.signum is not None:
                reason = f"killed by {_signal_name(event.signum)}"
            if event.reason:
                with contextlib.suppress(OSError), open(unit["log"], "a") as log:
                    log.write(f"fractal-like: {event.reason}\n")
            self._report(unit, code, reason, warm=True)

    def _ended(self, pid: int, unit: dict[str, Any], info: os.waitid_result) -> None:
        if pid in self.signalled:
            self.signalled.discard(pid)
            self._report(unit, None, STOPPED)
            return
        if info.si_code == os.CLD_EXITED:
            code, reason = info.si_status, None
        else:
            code, reason = SIGNAL_BASE + info.si_status, f"killed by {_signal_name(info.si_status)}"
        _write_small(unit["exit_code"], f"{code}\n")
        self._report(unit, code, reason)

    def _report(
        self, unit: dict[str, Any], code: int | None, reason: str | None, warm: bool = False
    ) -> None:
        if self.fail_fast and code != 0 and reason != STOPPED:
            self._stop()
        if self.runner_gone:
            return
        line = json.dumps({"id": unit["id"], "code": code, "reason": reason, "warm": warm})
        self.outbox.append(line + "\n")

    def _send_reports(self, force: bool = False) -> None:
        """Write the queued lines, once the freed slots have new units, and at most every
        REPORT_SECONDS while units run: the runner wakes for each write, and each wake-up
        takes a core from a unit (with short units, 40 times a second)."""
        if not self.outbox or self.runner_gone:
            self.outbox.clear()
            return
        now = time.monotonic()
        if not force and now < self.last_report + REPORT_SECONDS:
            return  # the poll's timeout brings the loop back in time
        self.last_report = now
        data = "".join(self.outbox).encode()
        self.outbox.clear()
        try:
            while data:
                data = data[os.write(1, data) :]
        except BrokenPipeError:
            self.runner_gone = True  # the files still record it

    # ------------------------------------------------------------ stopping

    def _stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.kill_at = time.monotonic() + self.kill_grace
        self._kill(signal.SIGTERM)

    def _kill(self, how: signal.Signals) -> None:
        for pid in self.running:
            self.signalled.add(pid)
            self.groups.add(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, how)
        for unit_id in self.warm_running:
            self._kill_warm(unit_id, how)

    def _kill_warm(self, unit_id: int, how: signal.Signals) -> None:
        self.warm_signalled.add(unit_id)
        pid = self.pool.pid_of(unit_id)
        if pid is not None:
            self.groups.add(pid)  # a warm child leads a session (and group) of its own
            self.pool.kill(unit_id, how)

    def _on_sigterm(self, _signum: int, _frame: Any) -> None:
        self.stop_requested = True

    def _read_control(self) -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        if not data:
            self.runner_gone = True  # start no more; the running units end by themselves
        elif b"stop" in data:
            self._stop()

    # ------------------------------------------------------------ the loop

    def run(self) -> None:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        # A stop by signal (an admin, or a runner that took the job over) acts like "stop";
        # the handler only records it, the loop acts (nothing is half-way through then).
        signal.signal(signal.SIGTERM, self._on_sigterm)
        os.set_blocking(0, False)
        poller = select.poll()
        poller.register(wake_read, select.POLLIN)
        poller.register(0, select.POLLIN)
        watching_stdin = True
        while True:
            while (
                not self.stopping
                and not self.runner_gone
                and self.next < len(self.units)
                and len(self.running) + len(self.warm_running) < self.parallelism
            ):
                self.next += 1
                self._start(self.units[self.next - 1])
            idle = not self.running and not self.warm_running
            self._send_reports(force=idle or self.stopping)
            if self.stop_requested:
                self._stop()
            if not self.running and not self.warm_running:
                # What a stopped unit left in its group (its children) goes with it.
                for group in self.groups:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(group, signal.SIGKILL)
                if self.pool is not None:
                    self.pool.close()
                return
            if self.runner_gone and watching_stdin:
                poller.unregister(0)
                watching_stdin = False
            timeout = None
            if self.kill_at is not None:
                timeout = max(0.0, self.kill_at - time.monotonic()) * 1000
            if self.outbox:
                due = max(0.0, self.last_report + REPORT_SECONDS - time.monotonic()) * 1000
                timeout = due if timeout is None else min(timeout, due)
            self._watch_warm_parents(poller)
            for fd, _event in poller.poll(timeout):
                if fd == wake_read:
                    while True:
                        try:
                            if not os.read(wake_read, 512):
                                break
                        except BlockingIOError:
                            break
                elif fd == 0:
                    self._read_control()
            if self.stop_requested:
                self._stop()
            self._reap()
            self._collect_warm()
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                self.kill_at = None
                self._kill(signal.SIGKILL)

    def _watch_warm_parents(self, poller: select.poll) -> None:
        """Poll the event pipes of the warm parents alive now (they come and go)."""
        current = set(self.pool.fds()) if self.pool is not None else set()
        for fd in self.watched - current:
            poller.unregister(fd)
        for fd in current - self.watched:
            poller.register(fd, select.POLLIN)
        self.watched = current


def _load_by_path(name: str, path: str) -> Any:
    """A module of the package, loaded by path: this file runs without the package."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _confine(batch: dict[str, Any]) -> None:
    """Keep every unit to come away from the server's files and process (see sandbox.py)."""
    if not batch.get("sandbox_file"):
        return
    sandbox = _load_by_path("fractal_like_sandbox", batch["sandbox_file"])
    problem = sandbox.confine(batch.get("private_paths") or [])
    if problem:
        sys.stderr.write(f"fractal-like launcher: {problem}\n")


def main(argv: list[str]) -> int:
    with open(argv[1]) as handle:
        batch = json.load(handle)
    # Run as a profile's account, the batch lies in the runner's folder: the runner deletes it.
    with contextlib.suppress(PermissionError):
        os.unlink(argv[1])
    if batch.get("umask") is not None:
        os.umask(batch["umask"])
    # Before any unit starts: a runner that takes the job over must find this process.
    _write_small(batch["pid_file"], f"{os.getpid()}\n")
    _confine(batch)
    Launcher(batch).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
