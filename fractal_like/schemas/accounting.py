"""Accounting queries and records (superusers only)."""

from __future__ import annotations

from pydantic import AwareDatetime, ConfigDict

from ._base import Id, ReadModel, RequestModel, UTCTimestamp


class AccountingQuery(RequestModel):
    """Which records: every bound is optional; unknown fields are ignored, as Fractal's."""

    model_config = ConfigDict(extra="ignore")

    user_id: Id | None = None
    timestamp_min: AwareDatetime | None = None
    timestamp_max: AwareDatetime | None = None
    fractal_job_id: Id | None = None


class AccountingQuerySLURM(AccountingQuery):
    resource_id: Id | None = None


class AccountingRecordRead(ReadModel):
    """One ended job: units run (Fractal's num_tasks) and images created."""

    id: int
    user_id: int
    timestamp: UTCTimestamp
    num_tasks: int
    num_new_images: int
    # Ours beyond Fractal's: which job and resource the record is about.
    job_id: int | None = None
    resource_id: int | None = None
