"""Nothing a request stores can break a later read (issue 11, "input bounded where it is stored").

JSON fields are bounded in depth and size, ids are PostgreSQL integers, strings hold no NUL,
task commands split as the runner will split them, and null is either refused or means
something. The route-wide tests are driven by our own OpenAPI schema, so a new route or a
new field is covered without being listed here (a new JSON-body route needs a base body in
`_base_bodies`, and the test says so).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fractal_like.schemas._base import MAX_INT, MAX_JSON_BYTES, MAX_JSON_DEPTH, check_json
from fractal_like.task_command import CommandError, check_command, split_command

from ..support.helpers import ApiClient, UserClient, expect, make_project
from ..support.runner_support import collect_body
from ..support.security_scene import build_scene

BAD_IDS = [0, -1, 2**31, 2**63, 2**64]
_numbers = itertools.count(1)


def deep(levels: int, leaf: Any = None) -> Any:
    """`levels` nested JSON objects (the field's own object is the first level)."""
    value: Any = {} if leaf is None else leaf
    for _ in range(levels - (leaf is None)):
        value = {"k": value}
    return value


# --- The checks themselves -----------------------------------------------------------------


def test_json_bounds() -> None:
    assert check_json(deep(MAX_JSON_DEPTH)) == deep(MAX_JSON_DEPTH)
    for too_deep in (deep(MAX_JSON_DEPTH + 1), {"k": [[[[]]]] * 1} | {"d": deep(200)}):
        with pytest.raises(ValueError, match="nested deeper"):
            check_json(too_deep)
    # Far beyond the recursion limit: refused by the walk, not by a RecursionError.
    bottomless: Any = []
    for _ in range(100_000):
        bottomless = [bottomless]
    with pytest.raises(ValueError, match="nested deeper"):
        check_json(bottomless)
    check_json({"k": "x" * (MAX_JSON_BYTES - 100)})
    with pytest.raises(ValueError, match="larger than"):
        check_json({"k": "x" * MAX_JSON_BYTES})
    with pytest.raises(ValueError, match="larger than"):
        check_json({"k": list(range(MAX_JSON_BYTES // 8))})
    for unstorable in ({"a\x00": 1}, {"a": ["b\x00"]}, {"a": "\ud800"}):
        with pytest.raises(ValueError, match="cannot contain"):
            check_json(unstorable)
    with pytest.raises(ValueError, match="finite"):
        check_json({"a": float("nan")})


def test_task_commands() -> None:
    assert check_command("python3 -m 'my task' --flag\tx") == "python3 -m 'my task' --flag\tx"
    assert split_command("python3 -m 'my task'") == ["python3", "-m", "my task"]
    for bad, reason in (
        ("python3 'unbalanced", "unbalanced quote"),
        ('python3 "x', "unbalanced quote"),
        ("python3 x\\", "trailing backslash"),
        ("python3\x00x", "control characters"),
        ("python3\nrm -rf /", "control characters"),
        ("''", "at least a program"),
    ):
        with pytest.raises(CommandError, match=reason):
            check_command(bad)


def test_task_commands_through_the_api(api: ApiClient) -> None:
    user = api.new_user()
    for command in ("/bin/echo 'unbalanced", "/bin/echo a\x00b", "/bin/echo\x1b[2J"):
        for field in ("command_parallel", "command_non_parallel"):
            response = user.post("/api/v2/task/", json={"name": "t", field: command})
            assert response.status_code == 422 and field in response.text, response.text
    task = expect(user.post("/api/v2/task/", json={"name": "t", "command_parallel": "/bin/a"}), 201)
    response = user.patch(f"/api/v2/task/{task['id']}/", json={"command_parallel": "a 'b"})
    assert response.status_code == 422 and "unbalanced quote" in response.text


# --- Every integer input is bounded (read from the OpenAPI schema) -------------------------


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return schema


def _integer_schemas(
    spec: dict[str, Any], schema: dict[str, Any], where: str, seen: set[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every integer schema reachable from `schema`, with where it was found."""
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        if name in seen:
            return
        seen.add(name)
        yield from _integer_schemas(spec, _resolve(spec, schema), f"{where}->{name}", seen)
        return
    if schema.get("type") == "integer":
        yield where, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from _integer_schemas(spec, option, where, seen)
    if isinstance(schema.get("items"), dict):
        yield from _integer_schemas(spec, schema["items"], f"{where}[]", seen)
    for name, child in schema.get("properties", {}).items():
        yield from _integer_schemas(spec, child, f"{where}.{name}", seen)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _integer_schemas(spec, schema["additionalProperties"], f"{where}{{}}", seen)


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


def test_every_integer_input_is_bounded(api: ApiClient) -> None:
    spec = api.client.get("/openapi.json").json()
    unbounded = []
    for method, path, operation in _operations(spec):
        found = []
        for parameter in operation.get("parameters", []):
            found += _integer_schemas(spec, parameter["schema"], parameter["name"], set())
        for content in operation.get("requestBody", {}).get("content", {}).values():
            found += _integer_schemas(spec, content["schema"], "body", set())
        for where, schema in found:
            low = schema.get("minimum", schema.get("exclusiveMinimum"))
            high = schema.get("maximum", schema.get("exclusiveMaximum"))
            if low is None or high is None or low < 0 or high > MAX_INT:
                unbounded.append(f"{method} {path} {where}: {schema}")
    assert unbounded == []


def _id_parameters(operation: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        parameter
        for parameter in operation.get("parameters", [])
        if parameter["name"].endswith("_id")
    ]


def test_out_of_range_ids_are_refused_on_every_route(api: ApiClient) -> None:
    spec = api.client.get("/openapi.json").json()
    admin = api.new_user(superuser=True)  # with a profile, so /api/v2/ routes get that far
    checked = 0
    for method, path, operation in _operations(spec):
        parameters = _id_parameters(operation)
        required_query = {
            parameter["name"]: "1"
            for parameter in parameters
            if parameter["in"] == "query" and parameter.get("required")
        }
        for parameter in parameters:
            for bad in BAD_IDS:
                url = path
                for other in operation.get("parameters", []):
                    if other["in"] == "path":
                        value = bad if other["name"] == parameter["name"] else 1
                        url = url.replace("{" + other["name"] + "}", str(value))
                query = {**required_query}
                if parameter["in"] == "query":
                    query[parameter["name"]] = str(bad)
                response = admin.request(method, url, params=query)
                assert response.status_code == 422, f"{method} {url} {query}: {response.text}"
                assert parameter["name"] in response.text, response.text
                checked += 1
    assert checked > 300


def test_deep_raw_bodies_are_refused(api: ApiClient) -> None:
    user = api.new_user()
    project = make_project(user)
    for depth in (1_000, 10_000):
        for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            for method, url in (
                ("POST", "/api/v2/task/"),
                ("POST", f"/api/v2/project/{project['id']}/dataset/"),
                ("PATCH", f"/api/v2/project/{project['id']}/"),
                ("PATCH", f"/auth/users/{user.id}/"),
            ):
                response = user.request(
                    method, url, content=body, headers={"content-type": "application/json"}
                )
                assert 400 <= response.status_code < 500, f"{method} {url}: {response.text}"
    expect(user.get("/api/v2/project/"), 200)


# --- The worst case of every request schema, then every read -------------------------------


@dataclass
class World:
    """The security suite's scene (one of everything, owned by alice), with alice's project
    shared with bob and a collected task package; `user_id` is bob, whom admin writes touch."""

    api: ApiClient
    alice: UserClient
    bob: UserClient
    ids: dict[str, int]
    zarr_dir: str
    image_url: str
    task_ref: dict[str, Any]


def _world(api: ApiClient, db_url: str) -> World:
    scene = build_scene(api, db_url)
    alice, bob, ids = scene.owner, scene.other, dict(scene.ids)
    ids["user_id"] = bob.id  # admin writes clear fields of bob, not of alice who reads
    project_id, dataset_id = ids["project_id"], ids["dataset_id"]
    expect(
        alice.post(f"/api/v2/project/{project_id}/access/", json={"email": bob.user["email"]}),
        201,
    )
    dataset = expect(alice.get(f"/api/v2/project/{project_id}/dataset/{dataset_id}/"), 200)
    collected = expect(alice.post("/api/v2/task/collect/custom/", json=collect_body()), 201)
    group = expect(alice.get(f"/api/v2/task-group/{collected[0]['taskgroupv2_id']}/"), 200)
    task_ref = {"pkg_name": group["pkg_name"], "version": group["version"]}
    task_ref["name"] = collected[0]["name"]
    image_url = scene.values["zarr_url"]
    return World(api, alice, bob, ids, dataset["zarr_dir"], image_url, task_ref)


def _base_bodies(world: World) -> dict[tuple[str, str], Callable[[int], tuple[Any, dict]]]:
    """A valid body (and query) for each JSON-body route; `n` makes names unique."""
    tmp: Path = world.api.tmp_path
    ids = world.ids
    return {
        ("PATCH", "/auth/current-user/"): lambda n: ({}, {}),
        ("POST", "/auth/register/"): lambda n: (
            {
                "email": f"worst{n}@example.org",
                "password": "a-long-password",
                "project_dirs": [str(tmp)],
            },
            {},
        ),
        ("PATCH", "/auth/users/{user_id}/"): lambda n: ({}, {}),
        ("POST", "/auth/users/{user_id}/set-groups/"): lambda n: (
            {"group_ids": [ids["group_id"]]},
            {},
        ),
        ("POST", "/auth/group/"): lambda n: ({"name": f"group{n}"}, {}),
        ("PATCH", "/auth/group/{group_id}/"): lambda n: ({}, {}),
        ("POST", "/admin/v2/resource/"): lambda n: (
            {
                "name": f"resource{n}",
                "type": "local",
                "jobs_local_dir": str(tmp / "jobs"),
                "tasks_local_dir": str(tmp / "tasks"),
            },
            {},
        ),
        ("PATCH", "/admin/v2/resource/{resource_id}/"): lambda n: ({}, {}),
        ("POST", "/admin/v2/resource/{resource_id}/profile/"): lambda n: (
            {"name": f"profile{n}"},
            {},
        ),
        ("PATCH", "/admin/v2/profile/{profile_id}/"): lambda n: ({}, {}),
        ("PUT", "/admin/v2/resource/{resource_id}/"): lambda n: (
            {
                "name": f"resource-put{n}",
                "type": "local",
                "jobs_local_dir": str(tmp / "jobs"),
                "tasks_local_dir": str(tmp / "tasks"),
            },
            {},
        ),
        ("PUT", "/admin/v2/profile/{profile_id}/"): lambda n: ({"name": f"profile-put{n}"}, {}),
        ("POST", "/admin/v2/accounting/"): lambda n: ({}, {}),
        ("POST", "/admin/v2/accounting/slurm/"): lambda n: ({}, {}),
        ("POST", "/api/v2/project/"): lambda n: ({"name": f"project{n}"}, {}),
        ("PATCH", "/api/v2/project/{project_id}/"): lambda n: ({}, {}),
        ("POST", "/api/v2/project/{project_id}/access/"): lambda n: (
            {"email": world.bob.user["email"]},
            {},
        ),
        ("PATCH", "/api/v2/project/{project_id}/access/{user_id}/"): lambda n: (
            {"permissions": "r"},
            {},
        ),
        ("POST", "/api/v2/project/{project_id}/guest/"): lambda n: (
            {"permissions": "r"},
            {"email": world.bob.user["email"]},
        ),
        ("PATCH", "/api/v2/project/{project_id}/guest/"): lambda n: (
            {"permissions": "r"},
            {"email": world.bob.user["email"]},
        ),
        ("POST", "/api/v2/project/{project_id}/dataset/"): lambda n: ({"name": f"ds{n}"}, {}),
        ("PATCH", "/api/v2/project/{project_id}/dataset/{dataset_id}/"): lambda n: ({}, {}),
        ("POST", "/api/v2/project/{project_id}/dataset/{dataset_id}/images/"): lambda n: (
            {"zarr_url": f"{world.zarr_dir}/image{n}.zarr"},
            {},
        ),
        ("PATCH", "/api/v2/project/{project_id}/dataset/{dataset_id}/images/"): lambda n: (
            {"zarr_url": world.image_url},
            {},
        ),
        ("POST", "/api/v2/project/{project_id}/dataset/{dataset_id}/images/query/"): lambda n: (
            {},
            {},
        ),
        ("POST", "/api/v2/project/{project_id}/dataset/import/"): lambda n: (
            {
                "name": f"imported{n}",
                "zarr_dir": f"{world.zarr_dir}/imported{n}",
                "images": [{"zarr_url": f"{world.zarr_dir}/imported{n}/image.zarr"}],
            },
            {},
        ),
        (
            "POST",
            "/api/v2/project/{project_id}/dataset/{dataset_id}/images/verify-unique-types/",
        ): lambda n: ({}, {"workflowtask_id": ids["workflowtask_id"]}),
        (
            "POST",
            "/api/v2/project/{project_id}/dataset/{dataset_id}/images/non-processed/",
        ): lambda n: (
            {},
            {"workflow_id": ids["workflow_id"], "workflowtask_id": ids["workflowtask_id"]},
        ),
        ("POST", "/api/v2/project/{project_id}/status/image-log/"): lambda n: (
            {
                "workflowtask_id": ids["workflowtask_id"],
                "dataset_id": ids["dataset_id"],
                "zarr_url": world.image_url,
            },
            {},
        ),
        ("POST", "/api/v2/task/"): lambda n: (
            {
                "name": f"task{n}",
                "version": "1",
                "command_non_parallel": "/bin/true",
                "command_parallel": "/bin/true",
            },
            {},
        ),
        ("POST", "/api/v2/task/collect/custom/"): lambda n: (
            {**collect_body(), "version": f"1.{n}"},
            {},
        ),
        ("PATCH", "/api/v2/task/{task_id}/"): lambda n: ({}, {}),
        ("PATCH", "/api/v2/task-group/{task_group_id}/"): lambda n: ({}, {}),
        ("POST", "/admin/v2/task/make-core/"): lambda n: ([ids["task_id"]], {}),
        ("POST", "/admin/v2/task/make-not-core/"): lambda n: ([ids["task_id"]], {}),
        ("PATCH", "/admin/v2/task-group/{task_group_id}/"): lambda n: ({}, {}),
        ("POST", "/admin/v2/task-group/{task_group_id}/reset/pip/"): lambda n: ({}, {}),
        ("POST", "/admin/v2/task-group/{task_group_id}/reset/pixi/"): lambda n: ({}, {}),
        ("POST", "/api/v2/project/{project_id}/workflow/"): lambda n: ({"name": f"wf{n}"}, {}),
        ("POST", "/api/v2/project/{project_id}/workflow/import/"): lambda n: (
            {"name": f"imported{n}", "task_list": [{"task": world.task_ref}]},
            {},
        ),
        ("POST", "/api/v2/project/{project_id}/workflow/import-from-template/"): lambda n: (
            {"name": f"from-template{n}"},
            {"template_id": ids["template_id"]},
        ),
        ("PATCH", "/api/v2/project/{project_id}/workflow/{workflow_id}/"): lambda n: ({}, {}),
        ("POST", "/api/v2/project/{project_id}/workflow/{workflow_id}/wftask/"): lambda n: (
            [{"task_id": ids["task_id"]}],
            {},
        ),
        (
            "PATCH",
            "/api/v2/project/{project_id}/workflow/{workflow_id}/wftask/{workflow_task_id}/",
        ): lambda n: ({}, {}),
        (
            "POST",
            "/api/v2/project/{project_id}/workflow/{workflow_id}/wftask/replace-task/",
        ): lambda n: ({}, {"workflow_task_id": ids["workflow_task_id"], "task_id": ids["task_id"]}),
        ("POST", "/api/v2/workflow-template/"): lambda n: (
            {"name": f"template{n}", "version": 1},
            {"workflow_id": ids["workflow_id"]},
        ),
        ("POST", "/api/v2/workflow-template/import/"): lambda n: (
            {"name": f"imported{n}", "version": 1, "data": {"name": "w", "task_list": []}},
            {},
        ),
        ("PATCH", "/api/v2/workflow-template/{template_id}/"): lambda n: ({}, {}),
        ("POST", "/api/v2/project/{project_id}/job/submit/"): lambda n: (
            {},
            {"workflow_id": ids["workflow_id"], "dataset_id": ids["dataset_id"]},
        ),
        ("PATCH", "/admin/v2/job/{job_id}/"): lambda n: ({"status": "failed"}, {}),
        ("POST", "/api/v2/project/{project_id}/status/images/"): lambda n: (
            {},
            {"dataset_id": ids["dataset_id"], "workflowtask_id": ids["workflowtask_id"]},
        ),
    }


def _fill(path: str, ids: dict[str, int]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", str(value))
    return path


def _kinds(spec: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a property's schema, each resolved."""
    schema = _resolve(spec, schema)
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return [_resolve(spec, option) for option in options]


def _free_json(option: dict[str, Any]) -> bool:
    return (
        option.get("type") == "object"
        and "properties" not in option
        and option.get("additionalProperties", True) in (True, {})
    )


@dataclass
class Case:
    field: str
    value: Any
    # 422 naming the field, or anything but a server error (then every read must still work).
    refused: bool


def _cases(spec: dict[str, Any], schema: dict[str, Any]) -> Iterator[Case]:
    required = set(schema.get("required", []))
    for field, property_schema in schema.get("properties", {}).items():
        options = _kinds(spec, property_schema)
        types = {option.get("type") for option in options}
        if "null" in types:
            yield Case(field, None, refused=False)
        elif field not in required:
            yield Case(field, None, refused=True)
        if "string" in types:
            yield Case(field, "a\x00b", refused=True)
        if "integer" in types and field.endswith("_id"):
            yield from (Case(field, bad, refused=True) for bad in BAD_IDS)
        for option in options:
            items = _resolve(spec, option.get("items", {}))
            if option.get("type") == "array" and items.get("type") == "string":
                yield Case(field, ["a\x00b"], refused=True)
            if option.get("type") == "array" and items.get("type") == "integer":
                yield from (Case(field, [bad], refused=True) for bad in BAD_IDS)
        if any(_free_json(option) for option in options):
            yield Case(field, deep(MAX_JSON_DEPTH), refused=False)
            yield Case(field, {"list": deep(MAX_JSON_DEPTH - 1, [])}, refused=False)
            yield Case(field, {"big": "x" * (MAX_JSON_BYTES - 1000)}, refused=False)
            yield Case(field, deep(MAX_JSON_DEPTH + 1), refused=True)
            yield Case(field, {"big": "x" * MAX_JSON_BYTES}, refused=True)
            yield Case(field, {"key\x00": 1}, refused=True)
            yield Case(field, {"value": ["\x00"]}, refused=True)


def _client_for(world: World, path: str) -> UserClient:
    return (
        world.api.admin
        if path.startswith(("/auth/users", "/auth/group", "/auth/register", "/admin"))
        else world.alice
    )


def _write_worst_cases(world: World, spec: dict[str, Any]) -> list[str]:
    bases = _base_bodies(world)
    missing, failures = [], []
    for method, path, operation in _operations(spec):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            continue
        if (method, path) not in bases:
            missing.append(f"{method} {path}")
            continue
        schema = _resolve(spec, content["application/json"]["schema"])
        if "anyOf" in schema:  # an optional body: `X | None`
            schema = next(_resolve(spec, o) for o in schema["anyOf"] if o.get("type") != "null")
        is_list = schema.get("type") == "array"
        item_schema = _resolve(spec, schema.get("items", {})) if is_list else schema
        client = _client_for(world, path)
        url = _fill(path, world.ids)
        for case in _cases(spec, item_schema):
            body, query = bases[(method, path)](next(_numbers))
            if is_list:
                if not isinstance(body[0], dict):
                    body = [case.value]  # a bare list of ids
                else:
                    body[0][case.field] = case.value
            else:
                body[case.field] = case.value
            response = client.request(method, url, params=query, json=body)
            what = f"{method} {url} {case.field}={str(case.value)[:60]!r}"
            # A bare list of ids has no field name to show.
            named = (
                case.field in response.text
                or not isinstance(body, dict | list)
                or (is_list and not isinstance(body[0], dict))
            )
            if response.status_code >= 500:
                failures.append(f"{what}: {response.status_code} {response.text[:200]}")
            elif case.refused and (response.status_code != 422 or not named):
                failures.append(f"{what}: not a 422 naming the field: {response.text[:200]}")
    assert missing == [], "give these routes a base body in _base_bodies"
    return failures


def _read_everything(world: World, spec: dict[str, Any]) -> list[str]:
    failures = []
    admin = world.api.new_user(superuser=True)  # with a profile, for the /api/v2/ lists
    # The writes cleared bob's profile (null is allowed there); without one the /api/v2/
    # routes answer 403 by design, so give it back before reading as bob.
    expect(
        world.api.admin.patch(
            f"/auth/users/{world.bob.id}/", json={"profile_id": world.ids["profile_id"]}
        ),
        200,
    )
    query_ids = {name: str(value) for name, value in world.ids.items()}
    for method, path, operation in _operations(spec):
        if method != "GET" or path in ("/api/alive/",) or path.endswith("/stop/"):
            continue
        if path == "/api/v2/job/squeue/":
            continue  # reads a SLURM queue; this world's resource is local (test_squeue.py)
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        if any(name not in world.ids for name in names):
            continue  # e.g. history runs and units: no job of this test ran
        required = [
            p["name"]
            for p in operation.get("parameters", [])
            if p["in"] == "query" and p.get("required")
        ]
        if any(name not in world.ids for name in required):
            continue
        params = {name: query_ids[name] for name in required}
        url = _fill(path, world.ids)
        # Admin routes are read by the admin; lists (no path ids) by everyone too.
        readers = [world.alice, world.bob, admin] if not names else [world.alice]
        if world.alice.get(url, params=params).status_code == 403:
            readers = [admin]
        for reader in readers:
            response = reader.get(url, params=params)
            if not 200 <= response.status_code < 300:
                who = reader.user["email"]
                failures.append(f"GET {url} as {who}: {response.status_code} {response.text[:200]}")
    return failures


def test_worst_case_writes_leave_every_read_working(api: ApiClient, db_url: str) -> None:
    world = _world(api, db_url)
    spec = api.client.get("/openapi.json").json()
    write_failures = _write_worst_cases(world, spec)
    read_failures = _read_everything(world, spec)
    assert write_failures == [] and read_failures == [], json.dumps(
        {"writes": write_failures, "reads": read_failures}, indent=1
    )


def test_the_reported_cases(api: ApiClient) -> None:
    """The cases of the issue, one by one: each refused or stored readably, never a 500."""
    alice, bob = api.new_user(), api.new_user()
    # A task shared with the default group, meta nested as deep as allowed: every user's
    # task-group list still reads; one level deeper is refused naming the field.
    body = {"name": "deep", "command_parallel": "/bin/true", "meta_parallel": deep(MAX_JSON_DEPTH)}
    expect(alice.post("/api/v2/task/", json=body), 201)
    response = alice.post(
        "/api/v2/task/", json={**body, "name": "deeper", "meta_parallel": deep(MAX_JSON_DEPTH + 1)}
    )
    assert response.status_code == 422 and "meta_parallel" in response.text
    for user in (alice, bob, api.new_user(superuser=True)):
        expect(user.get("/api/v2/task-group/"), 200)
    # Nulls on a user: refused (422), and every read of users still works.
    for field in ("slurm_accounts", "project_dirs", "email", "password", "is_active"):
        response = api.admin.patch(f"/auth/users/{bob.id}/", json={field: None})
        assert response.status_code == 422 and field in response.text, response.text
    expect(api.admin.patch(f"/auth/users/{bob.id}/", json={"profile_id": None}), 200)
    expect(api.admin.get("/auth/users/"), 200)
    expect(bob.get("/auth/current-user/"), 200)
    # Ids beyond PostgreSQL's integer: 422, valid missing ids: 404.
    for bad in BAD_IDS:
        expect(alice.get(f"/api/v2/project/{bad}/"), 422)
    expect(alice.get(f"/api/v2/project/{MAX_INT}/"), 404)
