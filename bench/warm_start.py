"""Benchmark: warm start against cold runs and the `xargs -P` floor, through the batch worker.

Not a test: it prints times per round, their spread, and the ratios to the floor (target of
issue 6: warm <= 0.1 x xargs) for two Python tasks that follow the task-call contract:

* `noop.py`: parses `--args-json/--out-json`, reads the args, writes nothing;
* `heavy.py`: the same, after importing pydantic (and numpy, when installed) at the top
  and validating the args with a pydantic model, like a real task package's imports.

For each task and round, the same N units run (a) through `xargs -0 -n 5 -P <cores>
python script ...` (the floor), (b) through the node worker (`runner/node/`, the program
inside every SLURM job and the local launcher) with `"warm": false`, (c) with `"warm":
true`. Each run gets fresh args/output folders; times are wall clock from start to the
last unit's end.

    .venv/bin/python bench/warm_start.py                       # 2,000 units, 3 rounds
    .venv/bin/python bench/warm_start.py --units 400 --rounds 2 --cold-rounds 1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fractal_like.runner.node_batch import WorkerOptions, build_batch
from fractal_like.runner.taskcall import UnitCall, UnitFiles

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.1

NOOP = """\
import argparse, json
parser = argparse.ArgumentParser()
parser.add_argument("--args-json", required=True)
parser.add_argument("--out-json", required=True)
options = parser.parse_args()
with open(options.args_json) as handle:
    json.load(handle)
"""

HEAVY = """\
import argparse, json
{numpy}
import pydantic


class Args(pydantic.BaseModel):
    zarr_url: str


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--args-json", required=True)
    parser.add_argument("--out-json", required=True)
    options = parser.parse_args()
    with open(options.args_json) as handle:
        Args.model_validate(json.load(handle))
"""


def write_tasks(folder: Path) -> dict[str, Path]:
    has_numpy = importlib.util.find_spec("numpy") is not None
    noop, heavy = folder / "noop.py", folder / "heavy.py"
    noop.write_text(NOOP)
    heavy.write_text(HEAVY.format(numpy="import numpy" if has_numpy else ""))
    return {"no-op": noop, "heavy import": heavy}


def prepare(folder: Path, units: int) -> list[tuple[str, str, str]]:
    """Fresh args files; (args, out, prefix) per unit."""
    folder.mkdir(parents=True)
    files = []
    for index in range(units):
        prefix = folder / f"par_{index:06d}"
        args = f"{prefix}-args.json"
        Path(args).write_text(json.dumps({"zarr_url": f"/zarr/{index}"}))
        files.append((args, f"{prefix}-metadiff.json", str(prefix)))
    return files


def children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


CPU: dict[str, list[float]] = {}  # CPU seconds of each run, everything it started included


def run_xargs(script: Path, folder: Path, units: int, cores: int) -> float:
    tokens: list[str] = []
    for args, out, _ in prepare(folder, units):
        tokens += [str(script), "--args-json", args, "--out-json", out]
    stdin = folder / "xargs-input"
    stdin.write_text("\0".join(tokens) + "\0")
    command = ["xargs", "-0", "-n", "5", "-P", str(cores), sys.executable]
    with stdin.open("rb") as handle:
        cpu, started = children_cpu(), time.perf_counter()
        subprocess.run(command, stdin=handle, stdout=subprocess.DEVNULL, check=True)
        elapsed = time.perf_counter() - started
    CPU.setdefault("xargs", []).append(children_cpu() - cpu)
    return elapsed


def run_worker(script: Path, folder: Path, units: int, cores: int, warm: bool) -> float:
    calls = [
        UnitCall(
            index,
            shlex.join([sys.executable, str(script)]),
            {"zarr_url": f"/zarr/{index}"},
            UnitFiles(folder, Path(prefix).name),
        )
        for index, (_args, _out, prefix) in enumerate(prepare(folder, units))
    ]
    batch = folder / "batch.json"
    # The runner's own batch builder: warm when asked and the command has the warm form.
    document = build_batch(calls, warm, WorkerOptions(parallelism=cores, fail_fast=False))
    batch.write_text(json.dumps(document))
    command = [sys.executable, "-m", "fractal_like.runner.node", str(batch)]
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    # The warm parents reap their children and the worker reaps the parents, so the
    # units' CPU is in here too.
    CPU.setdefault("warm" if warm else "cold", []).append(children_cpu() - cpu)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    failed = [line for line in lines if line["code"] != 0]
    assert len(lines) == units and not failed, f"{len(failed)} units failed: {failed[:2]}"
    assert all(line["warm"] is warm for line in lines), "warm/cold not as asked"
    return elapsed


def spread(values: list[float]) -> str:
    if not values:
        return "not run"
    text = f"median {statistics.median(values):7.2f} s"
    if len(values) > 1:
        text += f"  (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of xargs and warm")
    parser.add_argument("--cold-rounds", type=int, default=1, help="rounds of the cold worker")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", choices=["no-op", "heavy import"], default=None)
    options = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"{options.units} units, -P {options.cores}, load average {load:.1f} at the start")
    with tempfile.TemporaryDirectory(prefix="fl-warm-bench-") as tmp:
        root = Path(tmp)
        summary = []
        for name, script in write_tasks(root).items():
            if options.only and name != options.only:
                continue
            # Page cache and .pyc files first: nothing timed pays for them.
            run_xargs(script, root / f"{name}-warmup", min(options.units, 20), options.cores)
            times: dict[str, list[float]] = {"xargs": [], "cold": [], "warm": []}
            CPU.clear()
            for number in range(options.rounds):
                folder = root / f"{name}-{number}"
                times["xargs"].append(run_xargs(script, folder / "x", options.units, options.cores))
                times["warm"].append(
                    run_worker(script, folder / "w", options.units, options.cores, True)
                )
                if number < options.cold_rounds:
                    times["cold"].append(
                        run_worker(script, folder / "c", options.units, options.cores, False)
                    )
                print(
                    f"  {name} round {number + 1}: "
                    + ", ".join(
                        f"{kind} {values[-1]:.2f} s"
                        for kind, values in times.items()
                        if len(values) > number  # run in this round
                    ),
                    flush=True,
                )
            xargs = statistics.median(times["xargs"])
            warm = statistics.median(times["warm"])
            ratio = warm / xargs
            print(f"{name}:")
            for kind, values in times.items():
                print(f"  {kind:5s} {spread(values)}")
            per_round = [w / x for w, x in zip(times["warm"], times["xargs"], strict=True)]
            print(
                f"  warm / xargs = {ratio:.3f} (per round "
                f"{min(per_round):.3f}..{max(per_round):.3f}; target <= {TARGET_RATIO})"
            )
            if times["cold"]:
                cold = statistics.median(times["cold"])
                print(f"  cold / xargs = {cold / xargs:.3f}, warm / cold = {warm / cold:.3f}")
            cpu = {kind: statistics.median(values) for kind, values in CPU.items()}
            print(
                "  CPU seconds (median; less sensitive to other load): "
                + ", ".join(f"{kind} {value:.2f}" for kind, value in cpu.items())
                + f"; warm / xargs CPU = {cpu['warm'] / cpu['xargs']:.3f}"
            )
            summary.append((name, ratio))
        print(
            "ratios warm/xargs: "
            + ", ".join(
                f"{name} {ratio:.3f} ({'ok' if ratio <= TARGET_RATIO else 'MISSED'})"
                for name, ratio in summary
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
