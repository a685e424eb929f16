"""Who may do what: every route of the app, walked by five roles against owner's objects.

The routes come from the app's own route table (not a list kept here), and every route must
match a rule of RULES: a new route fails this test until someone decides who may call it.
Non-owners' calls that could change something are followed by a re-read, as owner, of all of
owner's objects, which must be unchanged; no response to a non-owner may show the name of
one of owner's objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.routing import iter_route_contexts

from ..support.helpers import ApiClient, UserClient
from ..support.security_scene import MARKER, Scene, build_scene

ROLES = ("anonymous", "guest", "other", "admin", "owner")

# What a role must get from a route.
OK = "ok"  # access granted: anything but 401 and 403 (a 404, 409 or 422 of state is fine)
LOGIN = "401"  # no token, no entry
REFUSED = "403"  # a logged-in user without the right
HIDDEN = "403/404"  # someone else's object: refused or not found, never 2xx

EXPECTED = {
    OK: lambda status: status not in (401, 403),
    LOGIN: lambda status: status == 401,
    REFUSED: lambda status: status == 403,
    HIDDEN: lambda status: status in (403, 404),
}


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: str  # matched against "METHOD /path/{param}/"
    expect: dict[str, str]
    # Who may see and change owner's objects through these routes.
    entitled: frozenset[str] = frozenset({"owner"})


def _everyone(outcome: str) -> dict[str, str]:
    return dict.fromkeys(ROLES, outcome)


ADMINS_ONLY = {
    "anonymous": LOGIN,
    "guest": REFUSED,
    "other": REFUSED,
    "owner": REFUSED,
    "admin": OK,
}
OWNERS_ONLY = {"anonymous": LOGIN, "guest": REFUSED, "other": HIDDEN, "admin": HIDDEN, "owner": OK}

OWNER_AND_ADMIN = frozenset({"owner", "admin"})

# First match wins.
RULES = [
    Rule(
        "public",
        r"^(GET /api/alive/|POST /auth/token/login/|GET /|GET /docs|GET /redoc"
        r"|GET /openapi\.json|GET /static/docs/.*)$",
        _everyone(OK),
    ),
    Rule("oneself", r"^\w+ /auth/current-user/", {**_everyone(OK), "anonymous": LOGIN}),
    # A JWT is not revoked by logging out: the call only drops the cookie.
    Rule("logout", r"^POST /auth/token/logout/$", {**_everyone(OK), "anonymous": LOGIN}),
    Rule("server settings", r"^GET /api/settings/", ADMINS_ONLY),
    Rule("users and groups", r"^\w+ /auth/(register|users|group)/", ADMINS_ONLY, OWNER_AND_ADMIN),
    Rule("resources, profiles, core tasks", r"^\w+ /admin/", ADMINS_ONLY, OWNER_AND_ADMIN),
    Rule(
        "owner's projects and templates",
        r"^\w+ /api/v2/(project/\{project_id\}|workflow-template/\{template_id\})/",
        OWNERS_ONLY,
    ),
    # As in Fractal, one reads only one's own activities here (admins under /admin/).
    Rule(
        "owner's task-group activities",
        r"^GET /api/v2/task-group/activity/\{task_group_activity_id\}/$",
        OWNERS_ONLY,
    ),
    # A superuser manages every task group (services/tasks.py).
    Rule(
        "owner's tasks, task groups and collections",
        r"^\w+ /api/v2/(task/\{task_id\}|task-group/(activity/)?\{\w+\})/",
        {**OWNERS_ONLY, "admin": OK},
        OWNER_AND_ADMIN,
    ),
    # Takes owner's workflow in its query.
    Rule("template from a workflow", r"^POST /api/v2/workflow-template/$", OWNERS_ONLY),
    Rule(
        "one's own lists and new objects",
        r"^\w+ /api/v2/",
        {**_everyone(OK), "anonymous": LOGIN, "guest": REFUSED},
    ),
]

# A mount serves files: one of them stands for it.
MOUNT_PROBES = {"/static/docs": "/static/docs/favicon.png"}


def rule_for(operation: str) -> Rule | None:
    return next((rule for rule in RULES if re.match(rule.pattern, operation)), None)


# --- Requests ---------------------------------------------------------------------------------

Body = Callable[[Scene, str], dict[str, Any]]


def _json(value: Any) -> Body:
    return lambda _scene, _role: {"json": value}


def _named(prefix: str, **extra: Any) -> Body:
    # Unique per role, so that a name already taken does not hide the real answer.
    return lambda _scene, role: {"json": {"name": f"{prefix}-{role}", **extra}}


def _resource(_scene: Scene, role: str) -> dict[str, Any]:
    folder = f"/tmp/authz-matrix-{role}"
    return {
        "json": {
            "name": f"resource-{role}",
            "type": "local",
            "jobs_local_dir": f"{folder}/jobs",
            "tasks_local_dir": f"{folder}/tasks",
            "jobs_runner_config": {},
        }
    }


def _image(scene: Scene, _role: str) -> dict[str, Any]:
    return {"json": {"zarr_url": scene.values["zarr_url"], "types": {"is_3D": True}}}


def _new_image(scene: Scene, role: str) -> dict[str, Any]:
    return {"json": {"zarr_url": f"{scene.values['zarr_url']}-{role}"}}


# A body that the route accepts when the caller may call it, so that a refusal is about
# access, not about a 422 of the body.
BODIES: dict[tuple[str, str], Body] = {
    ("POST", "/auth/token/login/"): lambda _s, _r: {
        "data": {"username": "nobody@example.org", "password": "not-a-password"}
    },
    ("PATCH", "/auth/current-user/"): _json({}),
    ("POST", "/auth/register/"): lambda _s, role: {
        "json": {"email": f"new-{role}@example.org", "password": "a-long-enough-password"}
    },
    ("PATCH", "/auth/users/{user_id}/"): _json({}),
    ("POST", "/auth/users/{user_id}/set-groups/"): lambda scene, _r: {
        "json": {"group_ids": [scene.ids["group_id"]]}
    },
    ("POST", "/auth/group/"): _named("group"),
    ("PATCH", "/auth/group/{group_id}/"): _json({}),
    ("POST", "/admin/v2/resource/"): _resource,
    ("PATCH", "/admin/v2/resource/{resource_id}/"): _json({}),
    ("POST", "/admin/v2/resource/{resource_id}/profile/"): _named("profile", resource_type="local"),
    ("PATCH", "/admin/v2/profile/{profile_id}/"): _json({}),
    # PUT what GET shows: the scene's resource and profile stay as they are.
    ("PUT", "/admin/v2/resource/{resource_id}/"): lambda scene, _r: {
        "json": scene.admin.get(scene.fill("/admin/v2/resource/{resource_id}/")).json()
    },
    ("PUT", "/admin/v2/profile/{profile_id}/"): lambda scene, _r: {
        "json": scene.admin.get(scene.fill("/admin/v2/profile/{profile_id}/")).json()
    },
    ("POST", "/admin/v2/accounting/"): _json({}),
    ("POST", "/admin/v2/accounting/slurm/"): _json({}),
    ("POST", "/admin/v2/task/make-core/"): lambda scene, _r: {"json": [scene.ids["task_id"]]},
    ("POST", "/admin/v2/task/make-not-core/"): lambda scene, _r: {"json": [scene.ids["task_id"]]},
    ("POST", "/api/v2/project/"): _named("project"),
    ("PATCH", "/api/v2/project/{project_id}/"): _named("renamed"),
    ("POST", "/api/v2/project/{project_id}/access/"): lambda scene, _r: {
        "json": {"email": scene.other.user["email"], "permissions": "r"}
    },
    ("PATCH", "/api/v2/project/{project_id}/access/{user_id}/"): _json({"permissions": "rw"}),
    ("POST", "/api/v2/project/{project_id}/guest/"): _json({"permissions": "r"}),
    ("PATCH", "/api/v2/project/{project_id}/guest/"): _json({"permissions": "rw"}),
    ("POST", "/api/v2/project/{project_id}/dataset/"): _named("dataset"),
    ("PATCH", "/api/v2/project/{project_id}/dataset/{dataset_id}/"): _named("renamed"),
    ("POST", "/api/v2/project/{project_id}/dataset/{dataset_id}/images/"): _new_image,
    ("PATCH", "/api/v2/project/{project_id}/dataset/{dataset_id}/images/"): _image,
    ("POST", "/api/v2/project/{project_id}/dataset/{dataset_id}/images/query/"): _json({}),
    ("POST", "/api/v2/project/{project_id}/dataset/{dataset_id}/images/non-processed/"): _json({}),
    ("POST", "/api/v2/project/{project_id}/dataset/import/"): lambda scene, role: {
        "json": {"name": f"imported-{role}", "zarr_dir": f"{scene.values['zarr_url']}-{role}"}
    },
    ("POST", "/api/v2/project/{project_id}/status/image-log/"): lambda scene, _r: {
        "json": {
            "workflowtask_id": scene.ids["workflowtask_id"],
            "dataset_id": scene.ids["dataset_id"],
            "zarr_url": scene.values["zarr_url"],
        }
    },
    ("POST", "/api/v2/task/"): _named("task", command_parallel="/bin/true"),
    ("PATCH", "/api/v2/task/{task_id}/"): _json({"category": "renamed"}),
    ("PATCH", "/api/v2/task-group/{task_group_id}/"): _json({}),
    ("POST", "/api/v2/task/collect/pip/"): lambda _s, role: {"data": {"package": f"pkg-{role}"}},
    ("POST", "/api/v2/project/{project_id}/workflow/"): _named("workflow"),
    ("POST", "/api/v2/project/{project_id}/workflow/import/"): _named("imported", task_list=[]),
    ("POST", "/api/v2/project/{project_id}/workflow/import-from-template/"): _named("copy"),
    ("PATCH", "/api/v2/project/{project_id}/workflow/{workflow_id}/"): _named("renamed"),
    ("POST", "/api/v2/project/{project_id}/workflow/{workflow_id}/wftask/"): lambda scene, _r: {
        "json": [{"task_id": scene.ids["task_id"]}]
    },
    (
        "PATCH",
        "/api/v2/project/{project_id}/workflow/{workflow_id}/wftask/{workflow_task_id}/",
    ): _json({"description": "changed"}),
    ("POST", "/api/v2/project/{project_id}/workflow/{workflow_id}/wftask/replace-task/"): _json({}),
    ("POST", "/api/v2/workflow-template/"): _named("template", version=2),
    ("PATCH", "/api/v2/workflow-template/{template_id}/"): _json({"description": "changed"}),
    ("POST", "/api/v2/project/{project_id}/job/submit/"): _json({}),
    ("POST", "/api/v2/project/{project_id}/status/images/"): _json({}),
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    required_query: tuple[str, ...]

    @property
    def operation(self) -> str:
        return f"{self.method} {self.path}"


def routes_of(api: ApiClient) -> list[Route]:
    """Every (method, path) the app answers, from its route table."""
    spec = api.client.get("/openapi.json").json()
    app = api.client.app
    routes = []
    for context in iter_route_contexts(app.routes):  # type: ignore[attr-defined]
        path = context.path
        if context.methods is None:  # a mount
            assert path in MOUNT_PROBES, f"add a file of mount {path} to MOUNT_PROBES"
            routes.append(Route("GET", MOUNT_PROBES[path], ()))
            continue
        for method in sorted(context.methods - {"HEAD"}):
            parameters = spec["paths"].get(path, {}).get(method.lower(), {}).get("parameters", [])
            required = tuple(p["name"] for p in parameters if p["in"] == "query" and p["required"])
            routes.append(Route(method, path, required))
    return routes


def _call(scene: Scene, role: str, route: Route) -> Any:
    client = scene.api.client
    known = {**scene.ids, **scene.values, "guest_user_id": scene.guest.id}
    query = {name: known[name] for name in route.required_query}
    body = BODIES.get((route.method, route.path))
    kwargs = body(scene, role) if body else {}
    headers = {} if role == "anonymous" else _client_of(scene, role).headers
    return client.request(
        route.method, scene.fill(route.path), params=query, headers=headers, **kwargs
    )


def _client_of(scene: Scene, role: str) -> UserClient:
    return {"guest": scene.guest, "other": scene.other, "admin": scene.admin, "owner": scene.owner}[
        role
    ]


def owners_world(scene: Scene) -> dict[str, Any]:
    """Everything of owner's, read as owner."""
    ids, owner = scene.ids, scene.owner
    project = f"/api/v2/project/{ids['project_id']}"
    reads = [
        "/auth/current-user/",
        f"{project}/",
        f"{project}/access/",
        f"{project}/dataset/{ids['dataset_id']}/",
        f"{project}/workflow/{ids['workflow_id']}/",
        f"{project}/job/{ids['job_id']}/",
        f"/api/v2/task/{ids['task_id']}/",
        f"/api/v2/task-group/{ids['task_group_id']}/",
        f"/api/v2/task-group/activity/{ids['activity_id']}/",
        f"/api/v2/workflow-template/{ids['template_id']}/",
    ]
    world = {url: (r := owner.get(url)).status_code == 200 and r.json() for url in reads}
    images = owner.post(f"{project}/dataset/{ids['dataset_id']}/images/query/", json={})
    world["images"] = images.json()
    return world


def _changes(route: Route) -> bool:
    # Fractal's stop routes are GETs that change the job.
    return route.method != "GET" or route.path.endswith("/stop/")


def _walk_order(route: Route) -> tuple[int, int, str]:
    # Reads first, deletes last and deepest first, so that each call finds owner's objects.
    rank = {"GET": 0, "POST": 1, "PATCH": 1, "PUT": 1, "DELETE": 2}[route.method]
    depth = route.path.count("/")
    return (rank, -depth if rank == 2 else depth, route.operation)


def test_authorization_matrix(api: ApiClient, db_url: str) -> None:
    scene = build_scene(api, db_url)
    routes = sorted(routes_of(api), key=_walk_order)
    uncovered = [route.operation for route in routes if rule_for(route.operation) is None]
    assert uncovered == [], f"no rule of RULES says who may call: {uncovered}"
    unused = [rule.name for rule in RULES if not any(rule_for(r.operation) is rule for r in routes)]
    assert unused == [], f"rules that match no route: {unused}"

    world = owners_world(scene)
    walked: list[str] = []
    problems: list[str] = []

    def walk(role: str, route: Route) -> None:
        nonlocal world
        rule = rule_for(route.operation)
        assert rule is not None
        expected = rule.expect[role]
        response = _call(scene, role, route)
        status = response.status_code
        walked.append(f"{role:9} {route.operation:75} {status}  ({rule.name}: {expected})")
        if status >= 500 or not EXPECTED[expected](status):
            problems.append(
                f"{role} {route.operation}: {status}, expected {expected}: {response.text[:200]}"
            )
        entitled = role in rule.entitled
        if not entitled and MARKER in response.text:
            problems.append(
                f"{role} {route.operation}: shows owner's objects: {response.text[:200]}"
            )
        if _changes(route):
            now = owners_world(scene)
            if not entitled and now != world:
                problems.append(f"{role} {route.operation} changed owner's objects")
            world = now

    def deferred(role: str, route: Route) -> bool:
        # The admin's own changes to owner's things wait until owner has walked every route.
        rule = rule_for(route.operation)
        return role == "admin" and _changes(route) and "admin" in rule.entitled  # type: ignore[union-attr]

    for role in ("anonymous", "guest", "other", "admin"):
        for route in routes:
            if not deferred(role, route):
                walk(role, route)
    for route in routes:
        walk("owner", route)
    for route in routes:
        if deferred("admin", route):
            walk("admin", route)

    print("\n".join(walked))
    assert len(walked) == 5 * len(routes), "every role walked every route"
    assert problems == [], "\n".join(problems)
