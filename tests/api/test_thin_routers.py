"""Routers are thin: they validate, call the domain, and return a schema.

Queries and domain rules live in fractal_like/services; a router that builds SQL of its
own (select/update/delete) or runs a statement (`session.exec`/`execute`) fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROUTERS = Path(__file__).resolve().parents[2] / "fractal_like" / "api" / "routers"
SQL_PACKAGES = ("sqlalchemy", "sqlmodel")
SQL_BUILDERS = {"select", "update", "delete", "insert"}
STATEMENT_RUNNERS = {"exec", "execute"}


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in SQL_PACKAGES:
            found += [
                f"line {node.lineno}: imports {alias.name} from {node.module}"
                for alias in node.names
                if alias.name in SQL_BUILDERS
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in STATEMENT_RUNNERS
        ):
            found.append(f"line {node.lineno}: calls .{node.func.attr}()")
    return found


@pytest.mark.parametrize("path", sorted(ROUTERS.glob("*.py")), ids=lambda path: path.name)
def test_router_builds_no_sql(path: Path) -> None:
    assert _problems(path) == []


def test_the_check_sees_sql(tmp_path: Path) -> None:
    # The rule itself, on a router-shaped snippet, so that a broken check cannot pass.
    snippet = tmp_path / "probe.py"
    snippet.write_text(
        "from sqlmodel import select\n"
        "async def route(session):\n"
        "    return (await session.exec(select(1))).all()\n"
    )
    assert len(_problems(snippet)) == 2
