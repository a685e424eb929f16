"""Schemathesis over our own OpenAPI: generated requests, valid and invalid, never get a 5xx.

Runs in-process against the app of the `api` fixture (a real database, SQLite and
PostgreSQL), as an admin and as a plain user, with a bounded, reproducible number of
examples per operation. Half the strategies use the ids of real objects (security_scene)
in the path, so that requests reach the services and not only the 404 of a missing row.

The operations are split into groups (one test each) so that `pytest -n auto` spreads them.
Nothing is excluded: no operation starts long work here (collection and job submission only
record a pending row; the tests' app has no embedded runner).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from ..support.helpers import ApiClient, UserClient
from ..support.security_scene import Scene, build_scene

# Per operation, per strategy kind (random ids / real ids, each valid and invalid data).
# Set FRACTAL_LIKE_SCHEMATHESIS_EXAMPLES higher for a deeper local run.
MAX_EXAMPLES = int(os.environ.get("FRACTAL_LIKE_SCHEMATHESIS_EXAMPLES", "6"))
# Schemathesis' coverage phase too (about 5,000 more requests per role and database, some
# 30 s each): too long for every CI run, kept for a deeper check before a release.
COVERAGE = os.environ.get("FRACTAL_LIKE_SCHEMATHESIS_COVERAGE") == "1"

# Operation groups, first match wins; an operation in none fails the suite.
GROUPS = {
    "auth": r"^/(api/alive|api/settings|auth)/",
    "admin": r"^/admin/",
    "tasks": r"^/api/v2/(task|task-group)/",
    "templates": r"^/api/v2/workflow-template/",
    "jobs": r"^/api/v2/(job/|slurm/|project/\{project_id\}/(job|status)/)",
    "workflows": r"^/api/v2/project/\{project_id\}/workflow/",
    "projects": r"^/api/v2/(project|dataset)/",
}


def group_of(path: str) -> str | None:
    return next((name for name, pattern in GROUPS.items() if re.match(pattern, path)), None)


def _run_order(method: str, path: str) -> tuple[int, str, str]:
    # Deleting owner's objects, or changing the caller's own password (which revokes its
    # token), would turn the rest of the group into 404s and 401s: those go last.
    last = method == "DELETE" or (method, path) == ("PATCH", "/auth/current-user/")
    return (1 if last else 0, path, method)


@dataclass
class Failure:
    operation: str
    status: int
    request: str
    body: str


def _send(client: TestClient, kwargs: dict[str, Any]) -> Any:
    """Send schemathesis' requests-style arguments through our TestClient.

    requests prepares the exact bytes (form, multipart, invalid JSON...) schemathesis meant;
    the TestClient sends them to the app of the `api` fixture, in the event loop its
    lifespan (the database engine) runs in.
    """
    kwargs = {key: value for key, value in kwargs.items() if key != "auth"}
    prepared = requests.Request(**kwargs).prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
    return client.request(
        prepared.method or "GET", prepared.url or "", content=body, headers=headers
    )


def _strategies(operation: Any, scene: Scene) -> Any:
    real = {
        name: scene.ids[name]
        for name in re.findall(r"\{(\w+)\}", operation.path)
        if name in scene.ids
    }
    kinds = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        kinds.append(operation.as_strategy(generation_mode=mode))
        if real:
            kinds.append(operation.as_strategy(generation_mode=mode, path_parameters=real))
    return kinds


def _check(case: Any, client: UserClient, scene: Scene, failures: list[Failure]) -> None:
    """Send one case as `client`; record it if the answer is a 5xx."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=client.headers)
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    curl = case.as_curl_command(headers=client.headers)[:600]
    try:
        response = _send(scene.api.client, kwargs)
    except Exception as error:  # the TestClient re-raises what became a 500
        failures.append(Failure(operation, 500, curl, repr(error)[:300]))
        return
    try:
        case.validate_response(response, checks=[not_a_server_error])
    except FailureGroup:
        failures.append(Failure(operation, response.status_code, curl, response.text[:300]))


def _fuzz(operation: Any, client: UserClient, scene: Scene, failures: list[Failure]) -> int:
    """Run the operation's examples; record every 5xx; return how many requests were sent."""
    sent = 0

    for strategy in _strategies(operation, scene):

        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,  # the same examples on every run, so CI is reproducible
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: every failure is recorded
        )
        @given(case=strategy, use_real_query=st.booleans())
        def one(case: Any, use_real_query: bool) -> None:
            nonlocal sent
            if use_real_query and case.query:
                for name in case.query:
                    if name in scene.ids:
                        case.query[name] = scene.ids[name]
            sent += 1
            _check(case, client, scene, failures)

        try:
            one()
        except hypothesis.errors.Unsatisfiable:
            continue  # e.g. no invalid value exists for an operation without parameters
    return sent


def _coverage(operation: Any, client: UserClient, scene: Scene, failures: list[Failure]) -> int:
    """Schemathesis' coverage phase: boundary and wrong-type values of every parameter and
    field, deterministic; every other case with owner's real ids in the path."""
    schema = operation.schema
    cases = schema.iter_coverage_cases(
        operation,
        generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        generation_config=schema.config.generation_for(operation=operation, phase="coverage"),
    )
    sent = 0
    for number, case in enumerate(cases):
        if number % 2:
            for name in list(case.path_parameters or {}):
                if name in scene.ids:
                    case.path_parameters[name] = scene.ids[name]
        sent += 1
        _check(case, client, scene, failures)
    return sent


def _read_back(spec: dict[str, Any], scene: Scene, failures: list[Failure]) -> int:
    """Every read, as owner and as admin, on owner's objects: what the examples stored must
    not break a later read (a list or a row that answers 500 for everyone)."""
    sent = 0
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if get is None or any(name not in scene.ids for name in re.findall(r"\{(\w+)\}", path)):
            continue
        query = {
            p["name"]: {**scene.ids, **scene.values}.get(p["name"])
            for p in get.get("parameters", [])
            if p["in"] == "query" and p.get("required")
        }
        for reader in (scene.owner, scene.admin):
            sent += 1
            try:
                status, text = (r := reader.get(scene.fill(path), params=query)).status_code, r.text
            except Exception as error:  # the TestClient re-raises what became a 500
                status, text = 500, repr(error)
            if status >= 500:
                failures.append(Failure(f"read back GET {path}", status, str(query), text[:300]))
    return sent


@pytest.mark.parametrize("group", list(GROUPS))
@pytest.mark.parametrize("role", ["admin", "user"])
def test_no_server_errors(api: ApiClient, db_url: str, role: str, group: str) -> None:
    scene = build_scene(api, db_url)
    client = scene.admin if role == "admin" else scene.owner
    spec = api.client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    ungrouped = [f"{op.method.upper()} {op.path}" for op in operations if group_of(op.path) is None]
    assert ungrouped == [], f"add these operations to a group of GROUPS: {ungrouped}"

    mine = sorted(
        (op for op in operations if group_of(op.path) == group),
        key=lambda op: _run_order(op.method.upper(), op.path),
    )
    assert mine, f"group {group} has no operation"
    failures: list[Failure] = []
    walked = {f"{op.method.upper()} {op.path}": _fuzz(op, client, scene, failures) for op in mine}
    if COVERAGE:
        for op in mine:
            walked[f"{op.method.upper()} {op.path}"] += _coverage(op, client, scene, failures)
    walked["read back"] = _read_back(spec, scene, failures)
    print(f"{group} as {role}: {sum(walked.values())} requests", walked)
    assert all(count > 0 for count in walked.values()), walked
    # One line per operation and answer: the same cause tends to repeat over many examples.
    distinct = {(f.operation, f.status, f.body): f for f in failures}.values()
    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(
        f"{f.operation} -> {f.status}\n  {f.request}\n  {f.body}" for f in distinct
    )
