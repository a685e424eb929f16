"""The task-call contract shared by every script of this package.

A task is called as ``python <script> --args-json A --out-json B``:

* both flags are required (argparse exits with code 2 when one is missing);
* the JSON object in ``A`` is passed to the task function as keyword arguments;
* a return value other than ``None`` is written as JSON to ``B``; ``None`` writes nothing;
* an existing ``B`` is never overwritten: the call stops with exit code 1 before the task runs;
* an exception in the task exits with code 1 and its traceback on stderr.

Log lines go to stderr (the contract's own) and stdout (what the tasks print).
A few file helpers used by several tasks live here too.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("fl_test_tasks")

RUNS_LOG = "runs.log"
DATA_FILE = "data.txt"


def run_task(function: Callable[..., Any], argv: Sequence[str] | None = None) -> None:
    """Run ``function`` under the task-call contract, with ``argv`` (default: sys.argv[1:])."""
    name = function.__name__
    parser = argparse.ArgumentParser(prog=name, description=_first_line(function.__doc__))
    parser.add_argument("--args-json", required=True, help="JSON file with the task arguments")
    parser.add_argument("--out-json", required=True, help="where to write the task output")
    options = parser.parse_args(argv)

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [fl_test_tasks] %(message)s",
    )

    out_path = Path(options.out_json)
    if out_path.exists():
        sys.exit(f"error: the output file {out_path} already exists; refusing to overwrite it")

    args = _read_args(Path(options.args_json))
    try:
        inspect.signature(function).bind(**args)
    except TypeError as exc:
        sys.exit(f"error: invalid arguments for task {name}: {exc}")

    logger.info("start task %s (pid %d) with arguments %s", name, os.getpid(), sorted(args))
    started = time.monotonic()
    result = function(**args)
    elapsed = time.monotonic() - started

    if result is None:
        logger.info("end task %s after %.3f s; no output", name, elapsed)
        return
    try:
        text = json.dumps(result, indent=2, sort_keys=True)
    except (TypeError, ValueError) as exc:
        sys.exit(f"error: the output of task {name} is not JSON-serialisable: {exc}")
    try:
        with out_path.open("x", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except FileExistsError:
        sys.exit(f"error: the output file {out_path} appeared meanwhile; refusing to overwrite it")
    logger.info("end task %s after %.3f s; output written to %s", name, elapsed, out_path)


def _first_line(doc: str | None) -> str | None:
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else None


def _read_args(path: Path) -> dict[str, Any]:
    try:
        args = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        sys.exit(f"error: cannot read the arguments file {path}: {exc}")
    except ValueError as exc:
        sys.exit(f"error: the arguments file {path} is not valid JSON: {exc}")
    if not isinstance(args, dict):
        sys.exit(f"error: the arguments file {path} must hold a JSON object, not {type(args)}")
    return args


# --- Helpers shared by the tasks --------------------------------------------------------------


def clean_url(zarr_url: str) -> str:
    """A zarr URL without trailing slashes (the form Fractal stores)."""
    return zarr_url.rstrip("/") or "/"


def record_run(zarr_url: str, task: str) -> None:
    """Append ``<task> <pid> <time>`` to ``<zarr_url>/runs.log``: one line per call of a unit."""
    folder = Path(zarr_url)
    folder.mkdir(parents=True, exist_ok=True)
    line = f"{task} {os.getpid()} {time.time():.6f}\n"
    # One write on a file opened for appending: concurrent callers do not interleave lines.
    with (folder / RUNS_LOG).open("a", encoding="utf-8") as handle:
        handle.write(line)


def write_image(zarr_url: str, content: str) -> None:
    """Create the image folder (with parents) and a small ``data.txt`` in it."""
    folder = Path(zarr_url)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / DATA_FILE, content)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so readers never see half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
