"""The mock national citizen-ID lookup: a FastAPI app of its own, run in its own process.

It stands in for the real national service (name + number + optional portrait
comparison), so the verification pipeline can be exercised end to end, including when
the lookup is slow, failing or down (``/admin/faults``).

Every error body has one shape, ``{"error": "<dotted.code>", "detail": ...}``. ID numbers
reach logs and error messages only masked (:func:`mask_id_number`); validation errors
never echo the submitted input, and uvicorn's access log (which would show the raw
number in ``/admin/registry/{id_number}`` paths) is off in ``__main__``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeAlias

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.lookup.registry import (
    EMBEDDING_DIM,
    ID_NUMBER_PATTERN,
    NAME_MAX_CHARS,
    Person,
    Registry,
    RegistryError,
    is_valid_id_number,
    mask_id_number,
    normalize_id_number,
    normalize_name,
    parse_person,
)

logger = logging.getLogger("services.lookup")

# Fault mode "timeout" holds the answer this long: far beyond any sane client timeout.
TIMEOUT_FAULT_S: Final = 30.0
# The distance at which portraits count as entirely dissimilar (similarity 0). dlib's
# 128-d embeddings put the same person below ~0.6, so 0.6 maps to 0.5.
SIMILARITY_ZERO_DISTANCE: Final = 1.2
# Interrupted sleeps poll for a client disconnect this often, so that abandoned
# "timeout" requests end instead of piling up (and holding up shutdown).
_DISCONNECT_POLL_S: Final = 0.1

Result: TypeAlias = Literal[
    "not_found", "cancelled", "deceased", "name_mismatch", "no_photo", "match"
]
FaultMode: TypeAlias = Literal["none", "error", "timeout", "outage"]

_EmbeddingValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class FaultConfig(BaseModel):
    """Failure injection for tests; applies to ``POST /v1/verify`` only."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: FaultMode = "none"
    # Probability that "error" or "timeout" fires on a request ("outage" always fires).
    failure_rate: float = Field(default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    # Added to every verify; bounded so a typo cannot park requests for hours.
    latency_ms: int = Field(default=0, ge=0, le=60_000)


class VerifyRequest(BaseModel):
    # strict: a number is not a name, "1.5" is not an embedding value, true is not 1.0.
    name: Annotated[str, Field(strict=True, min_length=1, max_length=NAME_MAX_CHARS)]
    id_number: Annotated[str, Field(strict=True, pattern=ID_NUMBER_PATTERN)]
    face_embedding: (
        Annotated[list[_EmbeddingValue], Field(min_length=EMBEDDING_DIM, max_length=EMBEDDING_DIM)]
        | None
    ) = None

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not normalize_name(value):
            raise ValueError("name is blank")
        return value


class VerifyResponse(BaseModel):
    result: Result
    photo_similarity: float | None
    request_id: str
    checked_at: str


class LookupHTTPError(Exception):
    """An answer in the common error shape; raised by handlers, rendered by one handler."""

    def __init__(self, status: int, code: str, detail: Any = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.detail = detail


def photo_similarity(
    a: tuple[float, ...] | list[float], b: tuple[float, ...] | list[float]
) -> float:
    """``max(0, 1 - euclidean / 1.2)`` rounded to 4 places: 1.0 identical, 0.0 far apart."""
    return round(max(0.0, 1.0 - math.dist(a, b) / SIMILARITY_ZERO_DISTANCE), 4)


def decide(
    person: Person | None, name: str, face_embedding: list[float] | None
) -> tuple[Result, float | None]:
    """The lookup's verdict. Status comes before the name: a cancelled number is cancelled
    whoever claims it. A similarity is only given for a ``match``, as the real service
    compares portraits only once name and number agree (and a mock that scored faces
    against any number would be an oracle for strangers' photos)."""
    if person is None:
        return "not_found", None
    if person.status != "valid":
        return person.status, None
    if normalize_name(name) != normalize_name(person.name):
        return "name_mismatch", None
    if person.photo_embedding is None:
        return "no_photo", None
    if face_embedding is None:
        return "match", None
    return "match", photo_similarity(person.photo_embedding, face_embedding)


def _error(status: int, code: str, detail: Any = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


_HTTP_CODES: Final = {
    404: "lookup.no_such_route",
    405: "lookup.method_not_allowed",
}


async def _sleep_while_connected(request: Request, seconds: float) -> bool:
    """Sleep up to ``seconds``; False as soon as the client has gone away."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(_DISCONNECT_POLL_S, remaining))
        if await request.is_disconnected():
            return False
    return True


def create_app(
    registry: Registry, faults: FaultConfig | None = None, *, rng: random.Random | None = None
) -> FastAPI:
    """The lookup app over ``registry``. ``rng`` decides partial fault rates (tests may seed it)."""
    app = FastAPI(
        title="simgate mock national ID lookup", version="1", docs_url=None, redoc_url=None
    )
    dice = rng or random.Random()
    # Mutable state lives in this closure; handlers run on the one event loop.
    state: dict[str, FaultConfig] = {"faults": faults or FaultConfig()}
    outcomes: Counter[str] = Counter()

    @app.exception_handler(LookupHTTPError)
    async def _lookup_error(_request: Request, exc: LookupHTTPError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path == "/v1/verify":
            outcomes["bad_request"] += 1
        # loc/msg/type only: pydantic's "input" would echo the ID number back.
        detail = [
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        return _error(422, "lookup.bad_request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"lookup.http_{exc.status_code}")
        return _error(exc.status_code, code, exc.detail)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled %s on %s", type(exc).__name__, request.url.path)
        return _error(500, "lookup.internal", "internal error")

    @app.post("/v1/verify")
    async def verify(body: VerifyRequest, request: Request) -> VerifyResponse:
        outcomes["requests"] += 1
        faults = state["faults"]
        masked = mask_id_number(body.id_number)
        if faults.latency_ms and not await _sleep_while_connected(request, faults.latency_ms / 1e3):
            outcomes["client_closed"] += 1
            raise LookupHTTPError(499, "lookup.client_closed")
        if faults.mode == "outage":
            outcomes["outage"] += 1
            raise LookupHTTPError(503, "lookup.outage", "injected outage")
        if faults.mode == "error" and dice.random() < faults.failure_rate:
            outcomes["error"] += 1
            logger.info("verify %s: injected error", masked)
            raise LookupHTTPError(500, "lookup.internal", "injected error")
        if faults.mode == "timeout" and dice.random() < faults.failure_rate:
            outcomes["timeout"] += 1
            logger.info("verify %s: injected timeout", masked)
            if not await _sleep_while_connected(request, TIMEOUT_FAULT_S):
                outcomes["client_closed"] += 1
                raise LookupHTTPError(499, "lookup.client_closed")
        result, similarity = decide(registry.get(body.id_number), body.name, body.face_embedding)
        outcomes[result] += 1
        logger.info("verify %s: %s similarity=%s", masked, result, similarity)
        return VerifyResponse(
            result=result,
            photo_similarity=similarity,
            request_id=uuid.uuid4().hex,
            checked_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "people": len(registry)}

    @app.get("/admin/faults")
    async def get_faults() -> FaultConfig:
        return state["faults"]

    @app.put("/admin/faults")
    async def put_faults(config: FaultConfig) -> FaultConfig:
        state["faults"] = config
        logger.warning(
            "faults: mode=%s failure_rate=%s latency_ms=%s",
            config.mode,
            config.failure_rate,
            config.latency_ms,
        )
        return config

    @app.get("/admin/stats")
    async def get_stats() -> dict[str, Any]:
        # "verify_requests": answered by the handler (faults included): each client retry
        # counts once. Requests refused by validation are counted under "bad_request".
        by_outcome = {k: v for k, v in outcomes.items() if k != "requests"}
        return {"verify_requests": outcomes["requests"], "by_outcome": by_outcome}

    @app.delete("/admin/stats")
    async def reset_stats() -> dict[str, Any]:
        outcomes.clear()
        return {"verify_requests": 0, "by_outcome": {}}

    def _path_id(id_number: str) -> str:
        key = normalize_id_number(id_number)
        if not is_valid_id_number(key):
            raise LookupHTTPError(
                422, "lookup.bad_request", "id_number must be 17 digits followed by a digit or X"
            )
        return key

    @app.put("/admin/registry/{id_number}")
    async def put_person(
        id_number: str, entry: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        key = _path_id(id_number)
        given = entry.get("id_number", key)
        if not isinstance(given, str) or normalize_id_number(given) != key:
            raise LookupHTTPError(422, "lookup.bad_request", "id_number differs from the path")
        try:
            person = parse_person({**entry, "id_number": key})
        except RegistryError as exc:
            raise LookupHTTPError(422, "lookup.bad_request", str(exc)) from None
        created = registry.upsert(person)
        logger.info("registry %s %s", "added" if created else "replaced", mask_id_number(key))
        return {"created": created, "people": len(registry)}

    @app.delete("/admin/registry/{id_number}")
    async def delete_person(id_number: str) -> dict[str, Any]:
        key = _path_id(id_number)
        if not registry.remove(key):
            raise LookupHTTPError(404, "lookup.person_not_found", mask_id_number(key))
        logger.info("registry removed %s", mask_id_number(key))
        return {"deleted": True, "people": len(registry)}

    return app
