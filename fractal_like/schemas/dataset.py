"""Datasets and images."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
)

from ._base import (
    JsonKey,
    NonEmptyStr,
    PathStr,
    ReadModel,
    RequestModel,
    StrictModel,
    TypeFilters,
    UTCTimestamp,
    check_text,
    omittable,
)
from .project import ProjectRead

AttributeValue = int | float | str | bool
MAX_ATTRIBUTES = 200
AttrKey = JsonKey


def _no_none(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes are allowed")
    return value


Attributes = Annotated[dict[AttrKey, AttributeValue], AfterValidator(_no_none)]
AttributeFilters = Annotated[
    dict[AttrKey, Annotated[list[AttributeValue], Field(min_length=1, max_length=1000)]],
    AfterValidator(_no_none),
]


class DatasetCreate(StrictModel):
    name: NonEmptyStr
    zarr_dir: PathStr | None = None
    project_dir: PathStr | None = None
    zarr_subfolder: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None


class DatasetUpdate(StrictModel):
    name: NonEmptyStr = omittable()
    zarr_dir: PathStr = omittable()
    is_starred: bool = omittable()


class DatasetRead(ReadModel):
    id: int
    name: str
    project_id: int
    project: ProjectRead
    zarr_dir: str
    is_starred: bool
    timestamp_created: UTCTimestamp


# Image bodies ignore unknown fields, as Fractal's image schemas do (they are not
# `additionalProperties: false`); every field they keep is still checked as a request's.


class ImageCreate(RequestModel):
    zarr_url: PathStr
    origin: PathStr | None = None
    attributes: Attributes = Field(default_factory=dict)
    types: TypeFilters = Field(default_factory=dict)


class ImageUpdate(RequestModel):
    zarr_url: PathStr
    attributes: Attributes | None = None
    types: TypeFilters | None = None


class ImageRead(ReadModel):
    zarr_url: str
    origin: str | None = None
    attributes: dict[str, Any]
    types: dict[str, bool]


class ImageFilters(RequestModel):
    """Fractal's ImageQuery (status/images/, verify-unique-types/) and NonProcessedImagesPayload."""

    type_filters: TypeFilters = Field(default_factory=dict)
    attribute_filters: AttributeFilters = Field(default_factory=dict)


class ImageQuery(ImageFilters):
    """Fractal's ImageQueryWithZarrUrl (images/query/)."""

    zarr_url: PathStr | None = None


class ImagePage(ReadModel):
    total_count: int
    page_size: int
    current_page: int
    attributes: dict[str, list[AttributeValue]]
    types: list[str]
    items: list[ImageRead]


class DatasetReadExpanded(DatasetRead):
    """A dataset in the list of all the user's datasets (GET /api/v2/dataset/)."""

    owner_email: str
    image_count: int


class DatasetExport(ReadModel):
    name: str
    zarr_dir: str
    images: list[ImageRead]


class DatasetImport(BaseModel):
    """An exported dataset, read back; unknown fields (e.g. legacy filters) are ignored.

    `images` are only taken as JSON objects here: tens of thousands of them take seconds
    to validate, which the route does off the event loop (`NEW_IMAGES.validate_python`),
    as ImageCreate with every check of a request. The schema shows them as they are read.
    """

    name: Annotated[NonEmptyStr, AfterValidator(check_text)]
    zarr_dir: Annotated[PathStr, AfterValidator(check_text)]
    images: Annotated[
        list[Any], WithJsonSchema({"type": "array", "items": ImageCreate.model_json_schema()})
    ] = Field(default_factory=list)


# The images of an import, validated as each one added alone is.
NEW_IMAGES = TypeAdapter(list[ImageCreate])
