"""Warm start, the client side: the warm parents of one worker process (`warm.py`).

STDLIB ONLY, Python >= 3.9 syntax: part of the node package the worker runs from.

`WarmPool`, used inside one worker process (so one user), starts a parent on first use per
(interpreter, script, interpreter environment), sends it unit requests, exposes the parents'
event pipes for `poll()`, kills a unit's process group, and notices a parent that died: the
units it had in flight are killed (their process groups) and reported `lost` with a plain
reason (never re-run: they may have done part of their work); the next unit starts a new
parent.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from .report import LOST_EXIT_CODE, signal_name

READY_TIMEOUT_SECONDS = 600.0
# Variables that change how an interpreter starts or decodes text: units that differ in them
# never share a parent, because the parent's interpreter was started with one set of them.
_INTERPRETER_ENV_PREFIXES = ("PYTHON", "LC_", "LANG")
# The parent's program, started by path with the task's own interpreter.
WARM_PARENT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "warm.py")


class WarmEvent(NamedTuple):
    """What a pool reports: a unit `started` (pid), `exited` (code, signal) or was `lost`."""

    kind: str
    token: int
    pid: int | None = None
    code: int | None = None
    signum: int | None = None
    reason: str | None = None


class WarmUnavailableError(RuntimeError):
    """This script cannot run warm (it does not compile, or its parent cannot start)."""


class _ParentHandle:
    def __init__(
        self, key: tuple[Any, ...], process: subprocess.Popen[bytes], env: dict[str, str]
    ) -> None:
        self.key = key
        self.env = env
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.requests = process.stdin.fileno()
        self.events = process.stdout.fileno()
        os.set_blocking(self.events, False)
        self.buffer = b""
        self.units: dict[int, int | None] = {}  # token -> pid once started
        self.status: int | None = None  # wait status once reaped

    def lines(self) -> tuple[list[dict[str, Any]], bool]:
        """Complete lines available now; True as second item when the pipe hit EOF."""
        eof = False
        while True:
            try:
                chunk = os.read(self.events, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()], eof


class WarmPool:
    """Warm parents of one batch runner process, started on first use per key.

    `submit` sends a unit; its `started`, `exited` and `lost` events come from `collect`,
    which never blocks: call it when `select()` says one of `fds()` is readable. A batch
    runner that reaps with `waitpid(-1)` must hand pids it does not know to `reaped`: the
    parents are its children too.
    """

    def __init__(
        self,
        ready_timeout: float = READY_TIMEOUT_SECONDS,
        should_abort: Callable[[], bool] = lambda: False,
        on_parent_started: Callable[[int], None] | None = None,
    ) -> None:
        self.on_parent_started = on_parent_started  # e.g. to put limits on it (by pid)
        self.ready_timeout = ready_timeout
        self.should_abort = should_abort
        self.parents: dict[tuple[Any, ...], _ParentHandle] = {}
        self.unusable: dict[tuple[str, str], str] = {}  # (python, script) -> why
        self.tokens: dict[int, _ParentHandle] = {}
        self.parents_started = 0

    # -- starting

    @staticmethod
    def _key(python: str, script: str, env: dict[str, str]) -> tuple[Any, ...]:
        relevant = sorted(
            (name, value)
            for name, value in env.items()
            if name.startswith(_INTERPRETER_ENV_PREFIXES)
        )
        return (python, script, tuple(relevant))

    def submit(
        self, token: int, argv: list[str], cwd: str, env: dict[str, str], log_file: str
    ) -> None:
        """Start a unit (`argv` = python, script, then its arguments) in a warm child.

        Raises WarmUnavailableError when the script cannot run warm: run the unit cold.
        """
        python, script = argv[0], argv[1]
        if (python, script) in self.unusable:
            raise WarmUnavailableError(self.unusable[(python, script)])
        if not os.path.isdir(cwd):
            raise FileNotFoundError(2, "No such file or directory", cwd)
        key = self._key(python, script, env)
        parent = self.parents.get(key)
        if parent is None:
            parent = self._start_parent(key, python, script, cwd, env)
        # The environment travels only when it differs from the one the parent started with.
        request = {
            "id": token,
            "argv": argv[1:],
            "cwd": cwd,
            "env": None if env == parent.env else env,
            "log": log_file,
        }
        data = (json.dumps(request) + "\n").encode()
        try:
            while data:
                data = data[os.write(parent.requests, data) :]
        except BrokenPipeError:
            # It died since its last event: forget it, let the next attempt start a new one.
            self._drop(parent)
            raise WarmUnavailableError("the warm parent died just before the unit") from None
        parent.units[token] = None
        self.tokens[token] = parent

    def _start_parent(
        self, key: tuple[Any, ...], python: str, script: str, cwd: str, env: dict[str, str]
    ) -> _ParentHandle:
        try:
            process = subprocess.Popen(
                [python, WARM_PARENT_FILE, script],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C is the runner's business
            )
        except OSError as error:
            raise WarmUnavailableError(f"cannot start a warm parent: {error}") from None
        self.parents_started += 1
        if self.on_parent_started is not None:
            self.on_parent_started(process.pid)
        parent = _ParentHandle(key, process, dict(env))
        first = self._first_event(parent)
        if first.get("event") != "ready":
            reason = str(first.get("reason") or "the warm parent did not start")
            self.unusable[(python, script)] = reason
            self._drop(parent)
            raise WarmUnavailableError(reason)
        self.parents[key] = parent
        return parent

    def _first_event(self, parent: _ParentHandle) -> dict[str, Any]:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline and not self.should_abort():
            select.select([parent.events], [], [], 0.1)
            lines, eof = parent.lines()
            if lines:
                return lines[0]
            if eof:
                return {"reason": "the warm parent ended while importing the script"}
        return {"reason": "the warm parent did not become ready in time"}

    # -- events

    def fds(self) -> list[int]:
        return [parent.events for parent in self.parents.values()]

    def busy(self) -> bool:
        return bool(self.tokens)

    def pid_of(self, token: int) -> int | None:
        parent = self.tokens.get(token)
        return parent.units.get(token) if parent is not None else None

    def collect(self) -> list[WarmEvent]:
        """Every event available now, from every parent; a dead parent's units come `lost`."""
        events: list[WarmEvent] = []
        for parent in list(self.parents.values()):
            lines, eof = parent.lines()
            for line in lines:
                token = line.get("id")
                if token not in parent.units:
                    continue
                if line.get("event") == "started":
                    parent.units[token] = line["pid"]
                    events.append(WarmEvent("started", token, pid=line["pid"]))
                elif line.get("event") == "exited":
                    del parent.units[token]
                    self.tokens.pop(token, None)
                    events.append(
                        WarmEvent("exited", token, line["pid"], line["code"], line.get("signal"))
                    )
            if eof:
                events.extend(self._lost(parent))
        return events

    def _lost(self, parent: _ParentHandle) -> list[WarmEvent]:
        status = self._wait(parent)
        if status is None and parent.process.returncode is not None:
            status = _status_of(parent.process.returncode)  # Popen reaped it meanwhile
        how = _describe_status(status)
        events = []
        for token, pid in parent.units.items():
            if pid is not None:
                # The unit may still run, orphaned: nobody could report how it ends.
                _kill_group(pid, signal.SIGKILL)
            self.tokens.pop(token, None)
            reason = f"the warm parent process running the unit died ({how}); the unit was killed"
            events.append(WarmEvent("lost", token, pid, LOST_EXIT_CODE, reason=reason))
        parent.units.clear()
        self._drop(parent)
        return events

    def reaped(self, pid: int, status: int) -> bool:
        """Tell the pool a pid reaped by someone else's `waitpid(-1)`; True if it was a parent."""
        for parent in self.parents.values():
            if parent.process.pid == pid:
                parent.status = status
                parent.process.returncode = _code_of(status)  # so Popen never waits again
                return True
        return False

    # -- killing and closing

    def kill(self, token: int, signum: int) -> None:
        """Signal a unit's process group (as soon as its pid is known)."""
        pid = self.pid_of(token)
        if pid is not None:
            _kill_group(pid, signum)

    def _wait(self, parent: _ParentHandle) -> int | None:
        if parent.status is None and parent.process.returncode is None:
            with contextlib.suppress(ChildProcessError):
                _, parent.status = os.waitpid(parent.process.pid, 0)
                parent.process.returncode = _code_of(parent.status)
        return parent.status

    def _drop(self, parent: _ParentHandle) -> None:
        self.parents.pop(parent.key, None)
        with contextlib.suppress(OSError):
            parent.process.kill()
        self._wait(parent)
        for stream in (parent.process.stdin, parent.process.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()

    def close(self) -> None:
        """End every parent: closing its request pipe makes it exit at once."""
        for parent in list(self.parents.values()):
            with contextlib.suppress(OSError):
                if parent.process.stdin is not None:
                    parent.process.stdin.close()
            deadline = time.monotonic() + 2.0
            while parent.process.returncode is None and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    pid, status = os.waitpid(parent.process.pid, os.WNOHANG)
                    if pid:
                        parent.status = status
                        parent.process.returncode = _code_of(status)
                        break
                time.sleep(0.005)
            self._drop(parent)


def _kill_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        # Not yet its own group leader (between fork and setsid): the process alone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
    except PermissionError:
        pass


def _code_of(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _status_of(returncode: int) -> int:
    """A wait status from a Popen returncode (negative: killed by that signal)."""
    return -returncode if returncode < 0 else returncode << 8


def _describe_status(status: int | None) -> str:
    if status is None:
        return "it could not be waited for"
    if os.WIFSIGNALED(status):
        return f"killed by {signal_name(os.WTERMSIG(status))}"
    return f"exit code {os.WEXITSTATUS(status)}"
