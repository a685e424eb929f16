"""The readable log of an activity, saved to the database after every line."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from ...models import TaskGroupActivity, table_of

# A pip log can be long; the activity keeps its end, which is where errors are.
MAX_LOG_CHARS = 200_000
_CUT = "[... earlier lines cut ...]\n"

ACTIVITIES = table_of(TaskGroupActivity)


class ActivityLog:
    def __init__(self, engine: AsyncEngine, activity_id: int, text: str | None) -> None:
        self.engine = engine
        self.activity_id = activity_id
        self.text = text or ""

    async def add(self, message: str) -> None:
        """Append a timestamped message (continuation lines indented) and save it."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        first, *rest = message.rstrip("\n").splitlines() or [""]
        self.text += f"{stamp} {first}\n" + "".join(f"    {line}\n" for line in rest)
        if len(self.text) > MAX_LOG_CHARS:
            self.text = _CUT + self.text[-(MAX_LOG_CHARS - len(_CUT)) :]
        async with self.engine.begin() as connection:
            await connection.execute(
                update(ACTIVITIES).where(ACTIVITIES.c.id == self.activity_id).values(log=self.text)
            )
