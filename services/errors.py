"""ServiceError: every expected failure, with its HTTP status and a stable dotted code.

The API turns these into ``{"error": code, "detail": ...}``; workers record the code.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "request.invalid"

    def __init__(self, detail: Any = None, *, code: str | None = None, status: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class BadRequest(ServiceError):
    status = 400
    code = "request.invalid"


class Unauthorized(ServiceError):
    status = 401
    code = "auth.invalid_key"


class Forbidden(ServiceError):
    status = 403
    code = "auth.forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Gone(ServiceError):
    status = 410
    code = "gone"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "upload.too_large"


class UnsupportedMedia(ServiceError):
    status = 415
    code = "upload.not_an_image"


class Unprocessable(ServiceError):
    status = 422
    code = "request.invalid"


class TooManyRequests(ServiceError):
    status = 429
    code = "rate_limited"
