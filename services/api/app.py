"""create_app(): the FastAPI application. It validates, stores and enqueues; no CPU work."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services import badge_registry
from services.api import (
    activations,
    admin,
    auditor,
    backoffice,
    carrier,
    deliveries,
    inspection,
    numbers,
    orders,
    pages,
    public,
    review,
    trace,
)
from services.api.deps import AppState
from services.config import Settings, get_settings
from services.errors import ServiceError
from services.privacy import install_log_masking
from services.storage.blobs import BlobStore
from services.storage.db import session_factory
from services.workers.celery_app import make_celery

log = logging.getLogger(__name__)
# Whole multipart body: three images plus the form fields.
BODY_OVERHEAD = 64 * 1024


def _error(status: int, code: str, detail: Any) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    install_log_masking()
    if settings.env == "production":
        badge_registry.signing_key(settings)  # refuse to start without the badge key

    app = FastAPI(
        title="simgate",
        version="0.2.0",
        summary="Identity verification for SIM cards sold online (MIIT notice 2016 No. 182)",
    )
    app.state.simgate = AppState(
        settings=settings,
        sessions=session_factory(settings.resolved_database_url),
        blobs=BlobStore(settings.blob_dir, settings.blob_key_bytes),
        celery=make_celery(settings),
    )
    body_limit = 3 * settings.max_upload_bytes + BODY_OVERHEAD

    @app.middleware("http")
    async def refuse_huge_bodies(request: Request, call_next: Any) -> Any:
        # Refuse before reading: a declared length over the limit is never spooled.
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > body_limit):
            return _error(413, "upload.too_large", f"request body over {body_limit} bytes")
        return await call_next(request)

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "problem": e.get("msg")}
            for e in exc.errors()
        ]
        missing = [
            p["field"]
            for p, e in zip(problems, exc.errors(), strict=True)
            if e.get("type") == "missing"
        ]
        code = "request.missing_field" if missing else "request.invalid"
        return _error(422, code, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http.error")
        return _error(exc.status_code, code, exc.detail)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error: %s", type(exc).__name__)
        return _error(500, "internal", "unexpected error; it has been logged")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(orders.router)
    app.include_router(numbers.router)
    app.include_router(deliveries.logistics)
    app.include_router(deliveries.couriers)
    app.include_router(activations.router)
    app.include_router(admin.router)
    app.include_router(inspection.router)
    app.include_router(public.admin)
    app.include_router(public.public)
    app.include_router(public.verify)
    app.include_router(auditor.router)
    app.include_router(trace.router)
    app.include_router(carrier.router)
    app.include_router(pages.router)
    app.include_router(review.router)
    app.include_router(backoffice.router)
    return app
