"""Whether a task's units run warm: decided here, once, and written into the batch.

Two conditions: the task's `warm_start` switch (its manifest's meta, then the workflow
task's meta, which wins; on unless set to false), and the command's form, `<absolute
python> <absolute script.py>` (the form task collection creates). The node worker only
follows what the batch says (see `node/batch.py`).
"""

from __future__ import annotations

from typing import Any

from .node.batch import warm_form


def warm_wanted(*metas: dict[str, Any] | None) -> bool:
    """The `warm_start` switch: the last meta that sets it wins; on unless set to false."""
    wanted = True
    for meta in metas:
        if isinstance(meta, dict) and "warm_start" in meta:
            wanted = meta["warm_start"] is not False
    return wanted


def command_runs_warm(warm_start: bool, argv: list[str]) -> bool:
    """A command of a task whose switch is `warm_start` runs warm: the batch's `warm`."""
    return warm_start and warm_form(argv)
