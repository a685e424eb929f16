"""Oversized request bodies get 413 before they are read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fractal_like.api.app import create_app
from fractal_like.config import Settings

from .helpers import ADMIN_EMAIL, ADMIN_PASSWORD, login


@pytest.fixture
def small_limit_client(settings: Settings) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"MAX_REQUEST_BYTES": 1000})
    with TestClient(create_app(limited)) as client:
        yield client


def test_declared_oversized_body_is_413(small_limit_client: TestClient) -> None:
    token = login(small_limit_client, ADMIN_EMAIL, ADMIN_PASSWORD)
    response = small_limit_client.post(
        "/api/v2/project/",
        json={"name": "x" * 5000},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 413
    assert "larger than 1000 bytes" in response.json()["detail"]


def test_streamed_oversized_body_is_413(small_limit_client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 500

    response = small_limit_client.post("/auth/token/login/", content=chunks())
    assert response.status_code == 413


def test_small_bodies_pass(small_limit_client: TestClient) -> None:
    assert login(small_limit_client, ADMIN_EMAIL, ADMIN_PASSWORD)
