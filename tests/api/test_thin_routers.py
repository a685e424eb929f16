"""Routers are thin: they validate, call the domain, and return a schema.

Queries and domain rules live in fractal_like/services; a router that builds SQL of its
own (select/update/delete) or runs a statement (`session.exec`/`execute`) fails here.
So does one that checks ownership by hand (api/ownership.py declares it) or raises
FastAPI's HTTPException for a domain refusal (services/errors.py, mapped in api/errors.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROUTERS = Path(__file__).resolve().parents[2] / "fractal_like" / "api" / "routers"
SQL_PACKAGES = ("sqlalchemy", "sqlmodel")
SQL_BUILDERS = {"select", "update", "delete", "insert"}
STATEMENT_RUNNERS = {"exec", "execute"}
# The checks api/ownership.py turns into dependencies: a router names a dependency instead.
OWNERSHIP_CHECKS = {"project_for", "child_of_project", "job_of_project", "wftask_of_workflow"}
# HTTPExceptions that are HTTP's own: fastapi-users' 400 codes that clients match on, and
# login's 429 with its Retry-After header. Everything else is a domain error.
HTTP_EXCEPTIONS_ALLOWED = {"auth.py": 4}


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


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _hand_made_checks(path: Path) -> list[str]:
    """Calls of the ownership checks, and comparisons with someone's `user_id`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and _called_name(node) in OWNERSHIP_CHECKS:
            found.append(f"line {node.lineno}: calls {_called_name(node)}()")
        elif isinstance(node, ast.Compare) and any(
            isinstance(side, ast.Attribute) and side.attr == "user_id"
            for side in (node.left, *node.comparators)
        ):
            found.append(f"line {node.lineno}: compares a user_id")
    return found


def _http_exceptions(path: Path) -> int:
    tree = ast.parse(path.read_text(), filename=str(path))
    return sum(
        isinstance(node, ast.Call) and _called_name(node) == "HTTPException"
        for node in ast.walk(tree)
    )


ROUTER_FILES = sorted(ROUTERS.glob("*.py"))


@pytest.mark.parametrize("path", ROUTER_FILES, ids=lambda path: path.name)
def test_router_builds_no_sql(path: Path) -> None:
    assert _problems(path) == []


@pytest.mark.parametrize("path", ROUTER_FILES, ids=lambda path: path.name)
def test_router_checks_no_ownership_by_hand(path: Path) -> None:
    assert _hand_made_checks(path) == []


@pytest.mark.parametrize("path", ROUTER_FILES, ids=lambda path: path.name)
def test_router_raises_domain_errors(path: Path) -> None:
    assert _http_exceptions(path) <= HTTP_EXCEPTIONS_ALLOWED.get(path.name, 0)


def test_the_check_sees_sql(tmp_path: Path) -> None:
    # The rule itself, on a router-shaped snippet, so that a broken check cannot pass.
    snippet = tmp_path / "probe.py"
    snippet.write_text(
        "from sqlmodel import select\n"
        "async def route(session):\n"
        "    return (await session.exec(select(1))).all()\n"
    )
    assert len(_problems(snippet)) == 2


def test_the_checks_see_ownership_and_http(tmp_path: Path) -> None:
    snippet = tmp_path / "probe.py"
    snippet.write_text(
        "async def route(session, user, activity):\n"
        "    await project_for(session, user, 1)\n"
        "    if activity.user_id != user.id:\n"
        "        raise HTTPException(403, detail='not yours')\n"
    )
    assert len(_hand_made_checks(snippet)) == 2
    assert _http_exceptions(snippet) == 1
