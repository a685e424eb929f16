"""sbatch scripts: golden files, refusal of unsafe values, and hostile paths run by a real sh.

Rewrite the golden files with FRACTAL_LIKE_UPDATE_GOLDEN=1, then review the diff before
committing it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fractal_like.runner.slurm.script import SbatchSpec, build_sbatch_script, sbatch_argv

GOLDEN = Path(__file__).parent / "golden" / "sbatch"
UPDATE = os.environ.get("FRACTAL_LIKE_UPDATE_GOLDEN") == "1"
HOSTILE = 'it\'s a "dir" $(rm -rf /) `id` ; & | > %j\n#SBATCH --uid=0'

TYPICAL = SbatchSpec(
    job_name="fl-j12-r3-b0",
    partition="main",
    cpus_per_task=2,
    mem_mb=1000,
    time_minutes=20,
    worker_python="/usr/bin/python3",
    worker_script="/srv/fractal/jobs/12/fractal_like_node",
    batch_file="/srv/fractal/jobs/12/1_task/fl-j12-r3-b0.json",
)

GPU = SbatchSpec(
    job_name="fl-j12-r4-b7",
    partition="gpu",
    cpus_per_task=8,
    mem_mb=64000,
    time_minutes=1500,
    account="lab-a",
    constraint="a100",
    gres="gpu:1",
    gpus="1",
    exclude="node[01-02]",
    nodelist="gpu[1-4]",
    extra_lines=["#SBATCH --mail-type=FAIL", "module load cuda/12.1", "#SBATCH --qos=high"],
    exports={
        "CELLPOSE_LOCAL_MODELS_PATH": "/home/u/.cache/cellpose models",
        "OMP_NUM_THREADS": "8",
    },
    shebang_line="#!/bin/bash -l",
    worker_python="/opt/python3.9/bin/python3",
    worker_script="/srv/fractal/jobs/12/fractal_like_node",
    batch_file="/srv/fractal/jobs/12/2_gpu/fl-j12-r4-b7.json",
)

HOSTILE_PATHS = SbatchSpec(
    job_name="fl-j13-r1-b0",
    partition="main",
    cpus_per_task=1,
    mem_mb=None,
    time_minutes=None,
    exports={"SNEAKY": HOSTILE},
    worker_python="/opt/my python/bin/python3",
    worker_script=f"/home/o'brien/{HOSTILE}/remote.py",
    batch_file="/data/$(rm -rf /)/`reboot`/a\nb/%j's batch.json",
)

WORKER_INIT = dataclasses.replace(
    TYPICAL,
    exports={"OMP_NUM_THREADS": "2"},
    worker_init=(
        "# the user's lines\nmodule purge\nmodule load gcc/12.2.0\n"
        "source /opt/venv/bin/activate\nexport OMP_NUM_THREADS=8\nexport MODELS=/m:/n"
    ),
)

CASES = {
    "typical": TYPICAL,
    "gpu_account_extra_exports": GPU,
    "hostile_paths": HOSTILE_PATHS,
    "worker_init": WORKER_INIT,
}


def directives(script: str) -> list[str]:
    """The #SBATCH lines sbatch reads: those before the first command line."""
    found = []
    for line in script.splitlines()[1:]:
        if line.strip() and not line.startswith("#"):
            break
        if line.startswith("#SBATCH"):
            found.append(line)
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_scripts(name: str) -> None:
    script = build_sbatch_script(CASES[name])
    path = GOLDEN / f"{name}.sh"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script)
    assert script == path.read_text()


def test_hostile_values_never_become_directives() -> None:
    assert directives(build_sbatch_script(HOSTILE_PATHS)) == [
        "#SBATCH --job-name=fl-j13-r1-b0",
        "#SBATCH --partition=main",
        "#SBATCH --ntasks=1",
        "#SBATCH --cpus-per-task=1",
    ]


def test_admin_directives_come_before_the_first_command() -> None:
    found = directives(build_sbatch_script(GPU))
    assert found[-2:] == ["#SBATCH --mail-type=FAIL", "#SBATCH --qos=high"]
    assert "#SBATCH --time=1-01:00:00" in found and "#SBATCH --mem=64000M" in found


def test_hostile_paths_reach_the_worker_intact(tmp_path: Path) -> None:
    """Run the script with a real sh: every hostile path arrives as one exact argument."""
    hostile_dir = tmp_path / "it's a $(touch pwned) `touch pwned` dir %j"
    hostile_dir.mkdir()
    python = hostile_dir / "py thon"
    python.symlink_to(sys.executable)
    worker = hostile_dir / "wor'ker.py"
    worker.write_text(
        "import json, os, sys\n"
        "mask = os.umask(0)\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': os.environ['SNEAKY'], 'umask': mask}))\n"
    )
    batch = f"{hostile_dir}/a\nb;c|d`e`$(f)/batch.json"
    spec = dataclasses.replace(
        HOSTILE_PATHS, worker_python=str(python), worker_script=str(worker), batch_file=batch
    )
    script = tmp_path / "job.sh"
    script.write_text(build_sbatch_script(spec))

    done = subprocess.run(
        ["sh", str(script)], capture_output=True, text=True, cwd=tmp_path, check=True
    )

    assert json.loads(done.stdout) == {"argv": [batch], "env": HOSTILE, "umask": 0o022}
    assert not list(tmp_path.rglob("pwned"))


def test_worker_init_runs_before_the_worker_each_word_intact(tmp_path: Path) -> None:
    """A real sh runs the script: `module` (a fake on PATH) gets its words, `source` reads
    the file, the exports reach the worker, the resource's export wins over the user's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    module = bin_dir / "module"
    module.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {tmp_path}/module-calls\n')
    module.chmod(0o755)
    sourced = tmp_path / "env.sh"
    sourced.write_text("export FROM_SOURCE=yes\n")
    worker = tmp_path / "worker.py"
    worker.write_text(
        "import json, os\n"
        "print(json.dumps({k: os.environ.get(k) for k in "
        "('FROM_SOURCE', 'MINE', 'OMP_NUM_THREADS', 'EMPTY')}))\n"
    )
    spec = dataclasses.replace(
        TYPICAL,
        worker_python=sys.executable,
        worker_script=str(worker),
        exports={"OMP_NUM_THREADS": "2"},
        worker_init=(
            f"module purge\nmodule load gcc/12.2.0 py+x@1\nsource {sourced}\n"
            "export MINE=a=b:c,d%e\nexport OMP_NUM_THREADS=8\nexport EMPTY="
        ),
    )
    script = tmp_path / "job.sh"
    script.write_text(build_sbatch_script(spec))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}

    done = subprocess.run(
        ["sh", str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, check=True
    )

    assert json.loads(done.stdout) == {
        "FROM_SOURCE": "yes",
        "MINE": "a=b:c,d%e",
        "OMP_NUM_THREADS": "2",
        "EMPTY": "",
    }
    calls = (tmp_path / "module-calls").read_text().splitlines()
    assert calls == ["purge", "load", "gcc/12.2.0", "py+x@1"]


def test_a_failing_worker_init_line_ends_the_job_before_the_worker(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text("open('ran', 'w')\n")
    spec = dataclasses.replace(
        TYPICAL,
        worker_python=sys.executable,
        worker_script=str(worker),
        worker_init="export A=1\n\nmodule load no-such-module",
    )
    script = tmp_path / "job.sh"
    script.write_text(build_sbatch_script(spec))
    done = subprocess.run(
        ["sh", str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},  # no `module` here
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "fractal-like: worker_init line 3 failed: module load no-such-module"
    )
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"worker_init": "export A=1\necho $(id)"}, "worker_init line 2"),
        ({"worker_init": "export A=$HOME"}, "worker_init line 1"),
        ({"extra_lines": ["#SBATCH --requeue"]}, "repeats --requeue"),
        ({"account": "x\n#SBATCH --uid=0"}, "account"),
        ({"partition": "a;b"}, "partition"),
        ({"partition": ""}, "partition"),
        ({"job_name": "my job"}, "job name"),
        ({"job_name": "x" * 129}, "job name"),
        ({"gres": "gpu:1 --uid=0"}, "gres"),
        ({"constraint": "$(id)"}, "constraint"),
        ({"nodelist": "n1'"}, "nodelist"),
        ({"cpus_per_task": 0}, "cpus_per_task"),
        ({"cpus_per_task": True}, "cpus_per_task"),
        ({"mem_mb": -1}, "mem_mb"),
        ({"time_minutes": 0}, "time_minutes"),
        ({"shebang_line": "/bin/sh"}, "shebang"),
        ({"shebang_line": "#!/bin/sh\nid"}, "shebang"),
        ({"extra_lines": ["module load x\nid"]}, "line breaks"),
        ({"extra_lines": ["#SBATCH --partition=other"]}, "repeats --partition"),
        ({"extra_lines": ["#SBATCH -p other"]}, "repeats --partition"),
        ({"extra_lines": ["#SBATCH -c4"]}, "repeats --cpus-per-task"),
        ({"extra_lines": ["#SBATCH --part=other"]}, "repeats --part"),
        ({"extra_lines": ["#SBATCH --mem-per-cpu=1G"]}, "repeats --mem-per-cpu"),
        ({"extra_lines": ["#SBATCH --output=/tmp/x"]}, "repeats --output"),
        ({"extra_lines": ["#SBATCH   -J other"]}, "repeats --job-name"),
        ({"extra_lines": ["#SBATCHX"]}, "must read"),
        ({"extra_lines": ["#SBATCH"]}, "must read"),
        ({"exports": {"1BAD": "x"}}, "variable name"),
        ({"exports": {"A-B": "x"}}, "variable name"),
        ({"exports": {"A": "x\x00y"}}, "NUL"),
        ({"batch_file": "/a\x00b"}, "batch_file"),
        ({"worker_python": ""}, "worker_python"),
        ({"worker_script": "/a\r\nb"}, "worker_script"),
        ({"exports": {"A": "x\r\ny"}}, "carriage"),
    ],
)
def test_unsafe_values_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("$", r"\$")):
        build_sbatch_script(dataclasses.replace(TYPICAL, **change))


def test_account_is_allowed_when_not_set_by_us() -> None:
    # The admin may pass what we do not set ourselves, e.g. an account or a QOS.
    script = build_sbatch_script(dataclasses.replace(TYPICAL, extra_lines=["#SBATCH -A lab"]))
    assert "#SBATCH -A lab" in directives(script)
    with pytest.raises(ValueError, match="repeats --account"):
        build_sbatch_script(dataclasses.replace(GPU, extra_lines=["#SBATCH -A lab"]))


def test_sbatch_argv_escapes_percent_and_keeps_paths_out_of_a_shell() -> None:
    argv = sbatch_argv("/jobs/a b/x.sh", "/jobs/100%/it's $(id).out", "/jobs/%j.err")
    assert argv == [
        "sbatch",
        "--parsable",
        "--no-requeue",
        "--output=/jobs/100%%/it's $(id).out",
        "--error=/jobs/%%j.err",
        "/jobs/a b/x.sh",
    ]


@pytest.mark.parametrize("bad", ["", "/a\\b.out", "/a\nb.out", "/a\x00b"])
def test_sbatch_argv_refuses_paths_sbatch_would_mangle(bad: str) -> None:
    with pytest.raises(ValueError, match="output"):
        sbatch_argv("/x.sh", bad, "/e")
