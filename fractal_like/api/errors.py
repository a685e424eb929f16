"""Turning validation failures found inside a route into 422 responses."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError


def unprocessable_from(error: ValidationError) -> HTTPException:
    """The same `detail` list FastAPI gives for a bad request body."""
    details = error.errors(include_url=False, include_context=False)
    return HTTPException(422, detail=jsonable_encoder(details))
