"""What every executor offers the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..taskcall import UnitCall


@dataclass
class UnitResult:
    unit_id: int
    exit_code: int | None  # None: the unit never ran, or was killed before it could end
    reason: str | None = None  # plain words when the unit did not end by itself
    warm: bool | None = None  # ran from a warm parent (True), cold (False), unknown (None)


ResultCallback = Callable[[UnitResult], None]


class Executor(Protocol):
    async def run(
        self,
        calls: list[UnitCall],
        on_result: ResultCallback,
        stop: asyncio.Event,
        fail_fast: bool = True,
    ) -> None:
        """Run the units, reporting each result; stop early when `stop` is set."""
        ...
