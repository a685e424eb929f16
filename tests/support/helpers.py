"""Small helpers to build test data through the API itself."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from fractal_like.db import make_async_engine, make_session_factory

ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "admin-password"
USER_PASSWORD = "user-password"

_counter = itertools.count(1)


class UserClient:
    """A user's view of the API: a TestClient whose requests carry that user's token."""

    def __init__(self, client: TestClient, token: str, user: dict[str, Any]) -> None:
        self._client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.user = user
        self.id: int = user["id"]

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self._client.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Any:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)


def login(client: TestClient, email: str, password: str) -> str:
    response = client.post("/auth/token/login/", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def expect(response: Any, status: int) -> Any:
    """Assert the status code, showing the body when it is wrong; return the JSON body."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    if status == 204 or not response.content:
        return None
    return response.json()


class ApiClient:
    def __init__(self, client: TestClient, tmp_path: Path) -> None:
        self.client = client
        self.tmp_path = tmp_path
        token = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        me = expect(
            client.get("/auth/current-user/", headers={"Authorization": f"Bearer {token}"}), 200
        )
        self.admin = UserClient(client, token, me)
        self._resource_id: int | None = None
        self._profile_id: int | None = None

    def local_profile(self) -> int:
        """A local resource with one profile, made once per test."""
        if self._profile_id is None:
            jobs = self.tmp_path / "jobs"
            resource = expect(
                self.admin.post(
                    "/admin/v2/resource/",
                    json={
                        "name": "local",
                        "type": "local",
                        "jobs_local_dir": str(jobs),
                        "tasks_local_dir": str(self.tmp_path / "tasks"),
                        "jobs_runner_config": {},
                    },
                ),
                201,
            )
            self._resource_id = resource["id"]
            profile = expect(
                self.admin.post(
                    f"/admin/v2/resource/{resource['id']}/profile/",
                    json={"name": "local-profile", "resource_type": "local"},
                ),
                201,
            )
            self._profile_id = profile["id"]
        return self._profile_id

    def new_user(
        self,
        *,
        with_profile: bool = True,
        superuser: bool = False,
        slurm_accounts: list[str] | None = None,
    ) -> UserClient:
        number = next(_counter)
        email = f"user{number}@example.org"
        project_dir = self.tmp_path / f"user{number}-data"
        project_dir.mkdir(parents=True, exist_ok=True)
        body: dict[str, Any] = {
            "email": email,
            "password": USER_PASSWORD,
            "project_dirs": [str(project_dir)],
        }
        if slurm_accounts is not None:
            body["slurm_accounts"] = slurm_accounts
        if with_profile:
            body["profile_id"] = self.local_profile()
        user = expect(self.admin.post("/auth/register/", json=body), 201)
        if superuser:
            expect(self.admin.patch(f"/auth/users/{user['id']}/", json={"is_superuser": True}), 200)
        token = login(self.client, email, USER_PASSWORD)
        me = expect(
            self.client.get(
                "/auth/current-user/",
                params={"group_ids_names": True},
                headers={"Authorization": f"Bearer {token}"},
            ),
            200,
        )
        return UserClient(self.client, token, me)


def make_task(user: UserClient, name: str = "task", **fields: Any) -> dict[str, Any]:
    """A custom task the user owns (parallel unless commands say otherwise)."""
    body: dict[str, Any] = {"name": name, "version": "1.0.0"}
    if "command_parallel" not in fields and "command_non_parallel" not in fields:
        body["command_parallel"] = "/bin/true"
    body.update(fields)
    return expect(user.post("/api/v2/task/", json=body), 201)


def make_project(user: UserClient, name: str = "project") -> dict[str, Any]:
    return expect(user.post("/api/v2/project/", json={"name": name}), 201)


def make_dataset(user: UserClient, project_id: int, name: str = "dataset") -> dict[str, Any]:
    return expect(user.post(f"/api/v2/project/{project_id}/dataset/", json={"name": name}), 201)


def make_workflow(
    user: UserClient, project_id: int, task_ids: list[int], name: str = "workflow"
) -> dict[str, Any]:
    workflow = expect(
        user.post(f"/api/v2/project/{project_id}/workflow/", json={"name": name}), 201
    )
    if task_ids:
        expect(
            user.post(
                f"/api/v2/project/{project_id}/workflow/{workflow['id']}/wftask/",
                json=[{"task_id": task_id} for task_id in task_ids],
            ),
            201,
        )
    return expect(user.get(f"/api/v2/project/{project_id}/workflow/{workflow['id']}/"), 200)


def run_in_session(url: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `work(session)` on a fresh async engine of the database at `url`."""

    async def main() -> Any:
        engine = make_async_engine(url)
        try:
            async with make_session_factory(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())
