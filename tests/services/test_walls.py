"""Walls between the layers, read from the source (ast) and checked at import time.

Services and the runner know no HTTP: they raise domain errors that the API maps to
status codes, so the runner and the command line never depend on the web stack.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fractal_like"
HTTP_PACKAGES = ("fastapi", "starlette", "fastapi_users")


def _imported_modules(path: Path) -> set[str]:
    """Every absolute module name a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ((node.module,) if node.module else ()))
            else:
                module = node.module or ""
            names.add(module)
            # `from . import x` names submodules.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["services", "runner"])
def test_no_http_imports(folder: str) -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imported_modules(path) if name.split(".")[0] in HTTP_PACKAGES
        )
        for path in _modules_under(folder)
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_no_api_imports_from_services_or_runner() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for folder in ("services", "runner")
        for path in _modules_under(folder)
        if any(name.startswith("fractal_like.api") for name in _imported_modules(path))
    ]
    assert offenders == []


def test_runner_and_services_load_without_the_web_stack() -> None:
    # Transitive imports count too: load every module of both layers in a fresh
    # interpreter and look at what came along.
    modules = [
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for folder in ("services", "runner")
        for path in _modules_under(folder)
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HTTP_PACKAGES!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_routers_take_sessions_from_deps_only() -> None:
    # A router gets its session through the `SessionDep` dependency; engines and session
    # factories (fractal_like.db) are the app's business, not a route's.
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in _modules_under("api/routers")
        if any(
            name == "fractal_like.db" or name.startswith("fractal_like.db.")
            for name in _imported_modules(path)
        )
    ]
    assert offenders == []
