"""Conformance with fractal-server 2.26's API: our OpenAPI diffed against the reference one.

Every difference is a short string key (``missing operation: GET /admin/v2/job/``). The test
fails on any difference not listed, with a reason, in ``conformance_gaps.json``, and on any
listed difference that no longer exists, so the list shrinks as the gaps close. Our own
extra routes, extra response properties and extra accepted fields are not differences.

What is compared, per operation of the reference:
- the operation itself (method and path) and its success status code;
- its query parameters;
- the success response: content type, array-vs-object shape, and every property the
  reference's JSON schema has (``$ref`` resolved, arrays followed as ``[]``, nested objects
  followed);
- the request body: media types, each property of the reference's body that our schema
  would refuse (we forbid unknown fields), unknown fields we refuse where the reference
  ignores them, fields (or a body) we require that the reference does not, and numeric
  bounds (lengths: only where the reference has one too) stricter than the reference's.
Fields of the reference that we accept but ignore are not detected.

A last test sends, through HTTP, bodies the real fractal client's test fixtures send, and
checks the server refuses them exactly while a listed difference says it would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fractal_like.api.app import create_app
from fractal_like.config import Settings

from ..support.helpers import ApiClient, expect

# The structure of fractal-server 2.26.0's own /openapi.json (methods, paths, statuses,
# parameters, schemas and their bounds): its prose (descriptions, summaries, titles,
# examples) is left out, since only the API's shape is compared.
REFERENCE = Path(__file__).with_name("golden") / "fractal-server-openapi-2.26.0.json"
GAPS = Path(__file__).with_name("conformance_gaps.json")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Bounds compared between the two request schemas; for the lower ones a larger value is stricter.
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
NUMERIC_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
LENGTH_BOUNDS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
MAX_INT = 2**31 - 1
# The reason `python -m tests.api.test_conformance` gives a new difference; the test refuses it.
TODO = "TODO: "
# Deep enough for every schema of the reference; a guard against cycles through $ref.
MAX_DEPTH = 8

Schema = dict[str, Any]


def _reference() -> Schema:
    return json.loads(REFERENCE.read_text())


def _ours(tmp_path: Path) -> Schema:
    # No lifespan runs: building the schema touches neither the database nor the runner.
    settings = Settings(
        DB_URL=f"sqlite:///{tmp_path / 'openapi.db'}",
        DATA_DIR=tmp_path / "data",
        JWT_SECRET="conformance-5f0c9a7e3b21d84c6e0f9b3a7d2c1e48a6b0d3f7",
        ADMIN_EMAIL="admin@example.org",
        ADMIN_PASSWORD="conformance-admin-password",
        BOOTSTRAP_LOCAL_RESOURCE=False,
        EMBEDDED_RUNNER=False,
    )
    return create_app(settings, check_migrations=False).openapi()


def _operations(spec: Schema) -> dict[str, Schema]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


class _Resolver:
    """Schemas of one document with $ref resolved and nullable unions flattened."""

    def __init__(self, spec: Schema) -> None:
        self.components = spec.get("components", {}).get("schemas", {})

    def resolve(self, schema: Schema | None) -> Schema:
        """The schema itself, its $ref target, or the merge of a union's non-null branches."""
        seen = 0
        while schema is not None and "$ref" in schema and seen < 32:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
            seen += 1
        if schema is None:
            return {}
        branches = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
        if not branches:
            return schema
        resolved = [self.resolve(branch) for branch in branches]
        resolved = [branch for branch in resolved if branch.get("type") != "null"]
        if len(resolved) == 1:
            merged = dict(resolved[0])
        else:
            # A union of several shapes (e.g. a discriminated runner config): the union of
            # their properties, an object closed only if every branch is.
            merged = {"properties": {}, "required": []}
            for branch in resolved:
                merged["properties"].update(branch.get("properties", {}))
                if branch.get("type") == "array":
                    merged.setdefault("items", branch.get("items"))
            # Required only what every branch requires.
            merged["required"] = sorted(
                set.intersection(*(set(branch.get("required", [])) for branch in resolved))
            )
            merged["additionalProperties"] = not all(
                branch.get("additionalProperties") is False for branch in resolved
            )
            for shape in ("array", "object"):
                if all(branch.get("type") == shape for branch in resolved):
                    merged["type"] = shape
        # Bounds and titles written beside the union (Field(...) on an Optional) still count.
        for key, value in schema.items():
            if key not in ("anyOf", "oneOf", "allOf"):
                merged.setdefault(key, value)
        return merged

    def is_open_object(self, schema: Schema) -> bool:
        """An object whose keys are free (a dict), so any property is accepted and kept."""
        if schema.get("properties"):
            return False  # a model, even one that allows extras: its properties are compared
        return schema.get("type") == "object" or schema.get("additionalProperties") not in (
            None,
            False,
        )


def _json_schema(content: Schema | None) -> Schema | None:
    if not content:
        return None
    for media in ("application/json", *content):
        if media in content:
            return content[media].get("schema")
    return None


def _success(operation: Schema) -> tuple[str | None, Schema]:
    codes = sorted(code for code in operation.get("responses", {}) if code.startswith("2"))
    if not codes:
        return None, {}
    return codes[0], operation["responses"][codes[0]]


def _shape_differs(theirs: Schema, mine: Schema) -> bool:
    """An array where the other has an object, or the reverse (scalars are not compared)."""
    shapes = {theirs.get("type"), mine.get("type")}
    return shapes == {"array", "object"}


def _response_gaps(
    key: str, ref: _Resolver, ours: _Resolver, theirs: Schema, mine: Schema, where: str, depth: int
) -> Iterator[str]:
    theirs, mine = ref.resolve(theirs), ours.resolve(mine)
    if depth > MAX_DEPTH or (not mine and depth > 0) or ours.is_open_object(mine):
        return
    if _shape_differs(theirs, mine):
        yield f"response type: {key} {where or '.'} {theirs['type']} (ours {mine['type']})"
        return
    if theirs.get("type") == "array" or "items" in theirs:
        if theirs.get("items"):
            yield from _response_gaps(
                key, ref, ours, theirs["items"], mine.get("items") or {}, f"{where}[]", depth + 1
            )
        return
    mine_properties = mine.get("properties", {})
    for name, prop in theirs.get("properties", {}).items():
        if name not in mine_properties:
            yield f"missing response property: {key} {where}.{name}"
        else:
            yield from _response_gaps(
                key, ref, ours, prop, mine_properties[name], f"{where}.{name}", depth + 1
            )


def _id_range(where: str, keyword: str, value: float) -> bool:
    """A bound that only states the range of a PostgreSQL integer id (1..2^31-1).

    No object has an id outside it, so where the reference accepts such an id and answers
    404 or 422 later, ours answers 422 at once: not a body the reference would accept.
    """
    if keyword == "maximum" and value == MAX_INT:
        return True
    name = where.rstrip("[]").rsplit(".", 1)[-1]
    id_like = name.endswith(("_id", "_ids")) or where == "[]"
    return id_like and keyword == "minimum" and value <= 1


def _stricter(keyword: str, mine: Any, theirs: Any) -> bool:
    if theirs is None:
        return True
    if keyword in LOWER_BOUNDS:
        return mine > theirs
    return mine < theirs


def _body_gaps(
    key: str, ref: _Resolver, ours: _Resolver, theirs: Schema, mine: Schema, where: str, depth: int
) -> Iterator[str]:
    theirs, mine = ref.resolve(theirs), ours.resolve(mine)
    if depth > MAX_DEPTH or not mine or ours.is_open_object(mine):
        return
    if _shape_differs(theirs, mine):
        yield f"request body type: {key} {where or '.'} {theirs['type']} (ours {mine['type']})"
        return
    for keyword in NUMERIC_BOUNDS if mine.get("type") in ("integer", "number") else LENGTH_BOUNDS:
        if keyword not in mine or _id_range(where, keyword, mine[keyword]):
            continue
        # Lengths are compared only where the reference bounds them too: ours bound every
        # string and JSON field against oversized input (see schemas/_base).
        if keyword in LENGTH_BOUNDS and keyword not in theirs:
            continue
        if _stricter(keyword, mine[keyword], theirs.get(keyword)):
            yield (
                f"stricter request bound: {key} {where or '.'} {keyword} {mine[keyword]:g}"
                f" (reference {theirs.get(keyword, 'none')})"
            )
    if theirs.get("type") == "array" and theirs.get("items") and mine.get("items"):
        yield from _body_gaps(
            key, ref, ours, theirs["items"], mine["items"], f"{where}[]", depth + 1
        )
        return
    their_properties = theirs.get("properties", {})
    mine_properties = mine.get("properties", {})
    if not their_properties:
        return
    closed = mine.get("additionalProperties") is False
    if closed and theirs.get("additionalProperties") is not False:
        yield f"request body forbids unknown fields: {key} {where or '.'}"
    for name, prop in their_properties.items():
        if name not in mine_properties:
            if closed:
                yield f"request body refuses field: {key} {where}.{name}"
            continue
        yield from _body_gaps(
            key, ref, ours, prop, mine_properties[name], f"{where}.{name}", depth + 1
        )
    their_required = set(theirs.get("required", []))
    for name in mine.get("required", []):
        if name not in their_required:
            yield f"request body requires: {key} {where}.{name}"


def _body_media_gaps(key: str, theirs: Schema, mine: Schema) -> Iterator[str]:
    """A body sent as the reference takes it (media type, or none at all) that ours refuses."""
    missing = sorted(set(theirs.get("content", {})) - set(mine.get("content", {})))
    if missing:
        yield f"request body content type: {key} {missing}"
    if mine.get("required") and not theirs.get("required"):
        yield f"request body required: {key}"


def differences(reference: Schema, ours_spec: Schema) -> list[str]:
    """Every way our API refuses or lacks what the reference's offers, as sorted keys."""
    ref, ours = _Resolver(reference), _Resolver(ours_spec)
    our_operations = _operations(ours_spec)
    found: list[str] = []
    for key, theirs in _operations(reference).items():
        mine = our_operations.get(key)
        if mine is None:
            found.append(f"missing operation: {key}")
            continue
        their_code, their_response = _success(theirs)
        my_code, my_response = _success(mine)
        if their_code != my_code:
            found.append(f"success status: {key} {my_code} (reference {their_code})")
        my_query = {p["name"] for p in mine.get("parameters", []) if p.get("in") == "query"}
        for parameter in theirs.get("parameters", []):
            if parameter.get("in") == "query" and parameter["name"] not in my_query:
                found.append(f"missing query parameter: {key} {parameter['name']}")
        their_types = set(their_response.get("content", {}))
        my_types = set(my_response.get("content", {}))
        if their_types - my_types and their_code != "204":
            found.append(f"success content type: {key} {sorted(their_types - my_types)}")
        their_schema = _json_schema(their_response.get("content"))
        if their_schema is not None and "application/json" in their_types:
            my_schema = _json_schema(my_response.get("content")) or {}
            found.extend(_response_gaps(key, ref, ours, their_schema, my_schema, "", 0))
        their_body = _json_schema(theirs.get("requestBody", {}).get("content"))
        if their_body is not None:
            my_body = _json_schema(mine.get("requestBody", {}).get("content"))
            if my_body is None:
                found.append(f"request body missing: {key}")
            else:
                found.extend(_body_media_gaps(key, theirs["requestBody"], mine["requestBody"]))
                found.extend(_body_gaps(key, ref, ours, their_body, my_body, "", 0))
    return sorted(set(found))


@pytest.fixture(scope="module")
def our_spec(tmp_path_factory: pytest.TempPathFactory) -> Schema:
    return _ours(tmp_path_factory.mktemp("openapi"))


def _operation_of(difference: str) -> str:
    """The operation a difference key names: ``kind: METHOD PATH [detail]``."""
    return " ".join(difference.split(": ", 1)[1].split(" ")[:2])


def test_reference_is_the_expected_one() -> None:
    reference = _reference()
    assert len(reference["paths"]) == 109
    assert len(_operations(reference)) == 145


def test_differences_from_the_reference_are_all_listed(our_spec: Schema) -> None:
    reference = _reference()
    found = differences(reference, our_spec)
    allowed: dict[str, str] = json.loads(GAPS.read_text())
    unexplained = [
        difference
        for difference, reason in allowed.items()
        if not isinstance(reason, str) or not reason.strip() or reason.startswith(TODO)
    ]
    assert not unexplained, f"entries of {GAPS.name} without a reason: {unexplained}"
    operations = _operations(reference)
    present = [key for key in operations if key in _operations(our_spec)]
    differing = {_operation_of(difference) for difference in found}
    complete = [key for key in present if key not in differing]
    print(
        f"\nconformance with fractal-server 2.26.0: {len(present)}/{len(operations)} operations "
        f"present, {len(complete)}/{len(operations)} identical, {len(found)} difference(s) "
        f"on {len(differing)} operation(s), each listed with its reason in {GAPS.name}"
    )

    unlisted = [difference for difference in found if difference not in allowed]
    stale = [difference for difference in allowed if difference not in found]
    message = []
    if unlisted:
        message.append(
            f"{len(unlisted)} difference(s) from fractal-server 2.26 not in {GAPS.name}: "
            "fix them, or add them there with a reason:\n  " + "\n  ".join(unlisted)
        )
    if stale:
        message.append(
            f"{len(stale)} entr(y/ies) of {GAPS.name} no longer a difference, remove them:\n  "
            + "\n  ".join(stale)
        )
    if message:
        message.append(f"(python -m tests.api.test_conformance rewrites {GAPS.name}: see its end)")
        pytest.fail("\n".join(message), pytrace=False)


def test_the_diff_finds_each_kind_of_difference() -> None:
    """The comparison itself, on copies of the reference with one known change of each kind."""
    reference = _reference()
    assert differences(reference, reference) == []

    ours = json.loads(json.dumps(reference))
    paths, schemas = ours["paths"], ours["components"]["schemas"]
    del paths["/api/alive/"]["get"]
    del schemas["ProjectRead"]["properties"]["name"]
    paths["/api/v2/project/"]["post"]["responses"]["200"] = paths["/api/v2/project/"]["post"][
        "responses"
    ].pop("201")
    user_list = paths["/auth/users/"]["get"]
    user_list["parameters"] = [p for p in user_list["parameters"] if p["name"] != "profile_id"]
    for name in ("ValidResourceLocal", "ValidResourceSlurmSudo", "ValidResourceSlurmSSH"):
        schemas[name]["additionalProperties"] = False
        del schemas[name]["properties"]["jobs_poll_interval"]
        schemas[name]["required"].append("prevent_new_submissions")
    query = "POST /api/v2/project/{project_id}/dataset/{dataset_id}/images/query/"
    paths[query.split(" ")[1]]["post"]["requestBody"]["required"] = True
    users = paths["/auth/users/"]["get"]["responses"]["200"]["content"]["application/json"]
    users["schema"] = users["schema"]["items"]
    # A length bound counts only where the reference has one of the same kind (minLength 1).
    schemas["ProjectCreate"]["properties"]["name"].update(minLength=2, maxLength=3)

    found = differences(reference, ours)
    resource = "POST /admin/v2/resource/"
    expected = {
        "missing operation: GET /api/alive/",
        "missing response property: GET /api/v2/project/ [].name",
        "missing response property: GET /api/v2/project/{project_id}/ .name",
        "success status: POST /api/v2/project/ 200 (reference 201)",
        "missing query parameter: GET /auth/users/ profile_id",
        f"request body forbids unknown fields: {resource} .",
        f"request body refuses field: {resource} .jobs_poll_interval",
        f"request body requires: {resource} .prevent_new_submissions",
        "stricter request bound: POST /api/v2/project/ .name minLength 2 (reference 1)",
        f"request body required: {query}",
        "response type: GET /auth/users/ . array (ours object)",
    }
    assert expected <= set(found), sorted(expected - set(found))
    assert not [d for d in found if "maxLength" in d]


RESOURCE = "POST /admin/v2/resource/"
PROFILE = "POST /admin/v2/resource/{resource_id}/profile/"
# Bodies the real fractal client's test fixtures send (fields the reference ignores or
# accepts), each with the differences that, while they last, explain a refusal.
# Each body with the differences (regular expressions, matched at their start) that would
# make the server refuse it.
CLIENT_BODIES = [
    (
        "resource",
        {"tasks_pixi_config": {}},
        [re.escape(f"request body refuses field: {RESOURCE} .tasks_pixi_config")],
    ),
    (
        "resource",
        {"jobs_poll_interval": 0},
        # A minimum of 0 accepts the 0 sent; a positive one refuses it.
        [re.escape(f"stricter request bound: {RESOURCE} .jobs_poll_interval minimum ") + "[1-9]"],
    ),
    (
        "profile",
        {"resource_id": 1},
        [re.escape(f"request body forbids unknown fields: {PROFILE} .")],
    ),
]


@pytest.mark.parametrize(("target", "extra", "explained_by"), CLIENT_BODIES)
def test_client_bodies_accepted_unless_a_listed_difference_refuses_them(
    api: ApiClient, our_spec: Schema, target: str, extra: dict[str, Any], explained_by: list[str]
) -> None:
    """Through HTTP: the static diff's verdict on a body is what the server really does."""
    found = differences(_reference(), our_spec)
    refused = any(re.match(pattern, d) for d in found for pattern in explained_by)
    resource = {
        "name": "client-fixture",
        "type": "local",
        "jobs_local_dir": str(api.tmp_path / "jobs"),
        "tasks_local_dir": str(api.tmp_path / "tasks"),
        "jobs_runner_config": {},
    }
    # The body without the client's extras is accepted, so a 422 below is about the extras.
    resource_id = expect(api.admin.post("/admin/v2/resource/", json=resource), 201)["id"]
    if target == "resource":
        body = {**resource, "name": "client-fixture-2", **extra}
        response = api.admin.post("/admin/v2/resource/", json=body)
    else:
        profile = {"name": "client-profile", "resource_type": "local", **extra}
        if "resource_id" in extra:
            profile["resource_id"] = resource_id
        response = api.admin.post(f"/admin/v2/resource/{resource_id}/profile/", json=profile)
    expect(response, 422 if refused else 201)
    if refused:
        assert all(name in response.text for name in extra), response.text


if __name__ == "__main__":
    # Rewrite the allow-list to the tree as it is: stale entries go, reasons kept, and each
    # new difference gets a TODO reason that the test refuses until a person writes one.
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        current = differences(_reference(), _ours(Path(folder)))
    listed: dict[str, str] = json.loads(GAPS.read_text())
    GAPS.write_text(
        json.dumps({d: listed.get(d, f"{TODO}why is this allowed?") for d in current}, indent=2)
        + "\n"
    )
    print(f"{GAPS}: {len(current)} difference(s), {len(set(current) - set(listed))} new (TODO)")
