"""Response models (they are also the OpenAPI documentation)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str = Field(examples=["upload.too_large"])
    detail: Any = None


class OrderAccepted(BaseModel):
    order_id: str
    status: str
    status_url: str
    idempotent_replay: bool = False


class OrderView(BaseModel):
    order_id: str
    status: str
    outcome: str | None
    ship_mode: str | None
    reasons: list[str]
    notes: list[str]
    msisdn: str
    delivery: str
    id_number_masked: str | None
    scores: dict[str, Any]
    attempts: int
    created_at: dt.datetime
    updated_at: dt.datetime
    decided_at: dt.datetime | None
    cancelled_at: dt.datetime | None = None
    seconds_to_decision: float | None


class OrderList(BaseModel):
    orders: list[OrderView]
    next_before: str | None
