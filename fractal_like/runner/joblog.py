"""A job's workflow.log: what happened, in plain words, one timestamped line at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

WORKFLOW_LOG = "workflow.log"


class JobLog:
    def __init__(self, working_dir: Path) -> None:
        self.path = working_dir / WORKFLOW_LOG

    def write(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a") as handle:
            for line in message.rstrip("\n").splitlines() or [""]:
                handle.write(f"{stamp} {line}\n")

    def read(self) -> str:
        try:
            return self.path.read_text(errors="replace")
        except OSError:
            return ""
