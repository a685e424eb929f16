"""worker_init: the accepted forms, the refused ones (named by line), and how they are written."""

from __future__ import annotations

import pytest

from fractal_like.worker_init import (
    WorkerInitError,
    exports,
    needs_shell,
    parse_worker_init,
    shell_lines,
)


def test_accepted_forms_become_quoted_shell_lines() -> None:
    text = "\n".join(
        [
            "",
            "# set up the environment",
            "  module purge",
            "module load gcc/12.2.0 Python/3.11.3-GCCcore-12.3.0",
            "source /opt/venvs/seg+gpu/bin/activate",
            ". /etc/profile.d/lmod.sh",
            "export OMP_NUM_THREADS=1",
            "export CELLPOSE_MODELS=/scratch/models:/opt/models",
            "export EMPTY=",
            "export OPTS=a=b,c@d%e+f-g",
        ]
    )
    lines = parse_worker_init(text)
    assert [line.number for line in lines] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert shell_lines(lines) == [
        "module purge || { echo 'fractal-like: worker_init line 3 failed: module purge' >&2; "
        "exit 1; }",
        "module load gcc/12.2.0 Python/3.11.3-GCCcore-12.3.0 || { echo 'fractal-like: "
        "worker_init line 4 failed: module load gcc/12.2.0 Python/3.11.3-GCCcore-12.3.0' >&2; "
        "exit 1; }",
        ". /opt/venvs/seg+gpu/bin/activate || { echo 'fractal-like: worker_init line 5 failed: "
        "source /opt/venvs/seg+gpu/bin/activate' >&2; exit 1; }",
        ". /etc/profile.d/lmod.sh || { echo 'fractal-like: worker_init line 6 failed: "
        ". /etc/profile.d/lmod.sh' >&2; exit 1; }",
        "export OMP_NUM_THREADS=1",
        "export CELLPOSE_MODELS=/scratch/models:/opt/models",
        "export EMPTY=''",
        "export OPTS=a=b,c@d%e+f-g",
    ]
    assert exports(lines) == {
        "OMP_NUM_THREADS": "1",
        "CELLPOSE_MODELS": "/scratch/models:/opt/models",
        "EMPTY": "",
        "OPTS": "a=b,c@d%e+f-g",
    }
    assert [line.number for line in needs_shell(lines)] == [3, 4, 5, 6]


@pytest.mark.parametrize("text", [None, "", "\n\n", "# only a comment\n   # another"])
def test_nothing_to_do(text: str | None) -> None:
    assert parse_worker_init(text) == []


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("rm -rf /", "only empty lines"),
        ("echo $(id)", "only empty lines"),
        ("conda activate env", "only empty lines"),
        ("export A=$(id)", "the value may hold"),
        ("export A=`id`", "the value may hold"),
        ("export PATH=/opt/bin:$PATH", "the value may hold"),
        ('export A="x y"', "exactly one NAME=VALUE"),
        ("export A='x'", "the value may hold"),
        ("export A=x;id", "the value may hold"),
        ("export A=x|id", "the value may hold"),
        ("export A=x&", "the value may hold"),
        ("export A=*", "the value may hold"),
        ("export A=~/x", "the value may hold"),
        ("export A=x B=y", "exactly one NAME=VALUE"),
        ("export A", "exactly one NAME=VALUE"),
        ("export 1A=x", "is not a variable name"),
        ("export A-B=x", "is not a variable name"),
        ("export FRACTAL_LIKE_DB_URL=x", "the server's"),
        ("source ~/.bashrc", "one absolute path"),
        ("source venv/bin/activate", "one absolute path"),
        ("source /a;id", "one absolute path"),
        ("source /a b", "one absolute path"),
        ("source /a$(id)", "one absolute path"),
        ("source", "one absolute path"),
        (". /a'b", "one absolute path"),
        ("module load", "module load NAME"),
        ("module avail", "module load NAME"),
        ("module load x;id", "module load NAME"),
        ("module load $(id)", "module load NAME"),
        ("module load x`id`", "module load NAME"),
        ("module purge now", "module load NAME"),
        ("module use /opt/modules", "module load NAME"),
        ("module load --force gcc", "module load NAME"),
        ("module load -f gcc", "module load NAME"),
    ],
)
def test_refused_lines_are_named(line: str, why: str) -> None:
    text = f"export OK=1\n{line}\nexport AFTER=1"
    with pytest.raises(WorkerInitError) as caught:
        parse_worker_init(text)
    message = str(caught.value)
    assert message.startswith(f"worker_init line 2 ({line!r}) is not accepted: ")
    assert why in message


def test_nul_is_refused() -> None:
    with pytest.raises(WorkerInitError, match="NUL"):
        parse_worker_init("export A=1\x00")


def test_a_long_line_is_shortened_in_the_message() -> None:
    with pytest.raises(WorkerInitError) as caught:
        parse_worker_init("echo " + "x" * 500)
    assert len(str(caught.value)) < 400
