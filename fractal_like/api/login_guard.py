"""Failed logins counted per account and per client address, to slow password guessing.

In memory, per process: with several API processes each keeps its own counts (the limits
then apply per process). Only failures are counted, so a client that logs in often with
the right password is never held back; a success clears its account's count.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request

from ..config import Settings

# Keys kept at most: beyond it, expired entries go first, then the oldest ones.
MAX_TRACKED_KEYS = 100_000


@dataclass(frozen=True)
class LoginLimits:
    max_per_account: int
    max_per_address: int
    window_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimits:
        return cls(
            max_per_account=settings.LOGIN_MAX_FAILURES_PER_ACCOUNT,
            max_per_address=settings.LOGIN_MAX_FAILURES_PER_ADDRESS,
            window_seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS,
        )


class LoginGuard:
    """Times of recent failures per key ("account:<email>", "address:<host>").

    Each key keeps only as many times as its limit: the oldest of them tells whether
    the limit is reached within the window and when it stops being so.
    """

    def __init__(self, limits: LoginLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()  # the embedded runner and tests may share the app
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, account: str, address: str) -> int | None:
        """Seconds until a login for this account from this address may be tried, or None."""
        now = self._clock()
        with self._lock:
            waits = [
                self._wait(_account_key(account), self.limits.max_per_account, now),
                self._wait(_address_key(address), self.limits.max_per_address, now),
            ]
        longest = max(waits)
        return math.ceil(longest) if longest > 0 else None

    def record_failure(self, account: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            self._push(_account_key(account), self.limits.max_per_account, now)
            self._push(_address_key(address), self.limits.max_per_address, now)
            if len(self._failures) > MAX_TRACKED_KEYS:
                self._forget_old(now)

    def record_success(self, account: str) -> None:
        with self._lock:
            self._failures.pop(_account_key(account), None)

    def tracked_keys(self) -> int:
        return len(self._failures)

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._failures.get(key)
        if times is None or len(times) < limit:
            return 0.0
        return times[0] + self.limits.window_seconds - now

    def _push(self, key: str, limit: int, now: float) -> None:
        times = self._failures.get(key)
        if times is None:
            times = self._failures[key] = deque(maxlen=limit)
        times.append(now)

    def _forget_old(self, now: float) -> None:
        horizon = now - self.limits.window_seconds
        for key in [key for key, times in self._failures.items() if times[-1] <= horizon]:
            del self._failures[key]
        # Still too many (a spray of distinct names): drop the keys made first.
        excess = len(self._failures) - MAX_TRACKED_KEYS
        for key in list(self._failures)[: max(excess, 0)]:
            del self._failures[key]


# Longer names cannot be e-mail addresses; cut, they keep each key's memory small.
MAX_ACCOUNT_KEY_CHARS = 320


def _account_key(account: str) -> str:
    return "account:" + account.strip().lower()[:MAX_ACCOUNT_KEY_CHARS]


def _address_key(address: str) -> str:
    return "address:" + address


def client_address(request: Request, settings: Settings) -> str:
    """The ASGI client's host; the first X-Forwarded-For entry only when the settings say so."""
    if settings.LOGIN_TRUST_FORWARDED_FOR:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
        if forwarded:
            return forwarded
    return request.client.host if request.client is not None else "unknown"


def login_guard(app: FastAPI) -> LoginGuard:
    """The app's guard, made on first use (no await in between, so made once)."""
    guard = getattr(app.state, "login_guard", None)
    if guard is None:
        guard = app.state.login_guard = LoginGuard(LoginLimits.from_settings(app.state.settings))
    return guard
