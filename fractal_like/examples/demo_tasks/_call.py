"""The task-call contract, once for every demo task.

``python <script> --args-json A --out-json B``: the JSON object in ``A`` becomes the
keyword arguments of the task function; a result other than None is written to ``B``
as JSON. Log lines go to stderr, which the runner keeps in the unit's log file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("demo_tasks")


def run_task(function: Callable[..., Any]) -> None:
    parser = argparse.ArgumentParser(prog=function.__name__)
    parser.add_argument("--args-json", required=True, help="JSON file with the task arguments")
    parser.add_argument("--out-json", required=True, help="where to write the task output")
    options = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    args = json.loads(Path(options.args_json).read_text(encoding="utf-8"))
    if not isinstance(args, dict):
        sys.exit(f"error: {options.args_json} must hold a JSON object")
    logger.info("%s starts (pid %d)", function.__name__, os.getpid())
    started = time.monotonic()
    result = function(**args)
    if result is not None:
        Path(options.out_json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    logger.info("%s ends after %.3f s", function.__name__, time.monotonic() - started)


def write_json(path: Path, data: Any) -> None:
    """Write through a temporary file, so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
