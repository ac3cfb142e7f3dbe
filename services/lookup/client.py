"""Synchronous client of the national ID lookup, for the Celery workers.

Each attempt has a timeout; timeouts, connection errors and 5xx answers are retried a
bounded number of times with jittered exponential backoff; a 4xx is our own mistake and
is raised at once (:class:`LookupRequestError`). A :class:`CircuitBreaker` shared by the
calls of one process stops hammering a lookup that is down: while it is open, calls fail
in microseconds with ``LookupUnavailable("circuit_open")`` and the pipeline can park the
order instead of tying up a worker for ``(retries + 1) * timeout_s``.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias

import httpx

from services.lookup.registry import mask_id_number, normalize_id_number

logger = logging.getLogger("services.lookup.client")

Reason: TypeAlias = Literal["timeout", "http_5xx", "connection", "circuit_open", "bad_response"]
RESULTS: Final = frozenset(
    {"not_found", "cancelled", "deceased", "name_mismatch", "no_photo", "match"}
)


@dataclass(frozen=True)
class LookupAnswer:
    result: str  # one of RESULTS
    photo_similarity: float | None
    request_id: str
    attempts: int
    elapsed_ms: float


class LookupUnavailable(Exception):
    """The lookup gave no usable answer. ``reason``: ``timeout``, ``http_5xx``,
    ``connection``, ``circuit_open`` or ``bad_response`` (a 2xx that is not a verdict)."""

    def __init__(self, reason: Reason, *, attempts: int = 0, detail: str = "") -> None:
        message = f"lookup unavailable: {reason} after {attempts} attempt(s)"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.reason: Reason = reason
        self.attempts = attempts
        self.detail = detail


class LookupRequestError(ValueError):
    """The lookup refused the request (4xx): ``code`` is its dotted error code."""

    def __init__(self, code: str, *, status_code: int, detail: Any = None) -> None:
        super().__init__(f"lookup refused the request ({status_code} {code})")
        self.code = code
        self.status_code = status_code
        self.detail = detail


BreakerState: TypeAlias = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Closed -> open after ``failure_threshold`` consecutive failures; while open every
    call fails fast; ``reset_after_s`` after opening one trial call is let through
    (half-open): its success closes the breaker, its failure reopens it."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_after_s < 0:
            raise ValueError("reset_after_s must not be negative")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started_at = 0.0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    @property
    def consecutive_failures(self) -> int:
        with self._lock:
            return self._failures

    def allow(self) -> bool:
        """May a call go out now? In half-open this hands out the single trial."""
        with self._lock:
            if self._state == "closed":
                return True
            now = self._clock()
            if self._state == "open":
                if now - self._opened_at < self.reset_after_s:
                    return False
                self._state = "half_open"
                self._trial_started_at = now
                return True
            # half_open with a trial in flight. A trial that never reported back (its
            # thread died) must not keep the breaker shut forever: hand out another.
            if now - self._trial_started_at >= self.reset_after_s:
                self._trial_started_at = now
                return True
            return False

    def check(self, attempts: int = 0) -> None:
        """Raise ``LookupUnavailable("circuit_open")`` unless a call may go out."""
        if not self.allow():
            raise LookupUnavailable("circuit_open", attempts=attempts)

    def record_success(self) -> None:
        with self._lock:
            self._state = "closed"
            self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.failure_threshold:
                if self._state != "open":
                    logger.warning("lookup circuit open after %d failure(s)", self._failures)
                self._state = "open"
                self._opened_at = self._clock()


class LookupClient:
    """``verify()`` against the lookup at ``base_url``. Thread-safe; one per process.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests). ``sleep`` and
    ``rng`` drive the backoff, also for tests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        max_backoff_s: float = 2.0,
        breaker: CircuitBreaker | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if retries < 0:
            raise ValueError("retries must not be negative")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ValueError("backoff must not be negative")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._sleep = sleep
        self._rng = rng or random.Random()
        # trust_env=False: the lookup is called directly; a proxy from the environment
        # would add a hop and, for 127.0.0.1, break the call.
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            trust_env=False,
            headers={"User-Agent": "simgate-lookup-client/1"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LookupClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential,
        capped at ``max_backoff_s``, with jitter in [50 %, 100 %] so that workers that
        failed together do not retry together."""
        base: float = min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))
        return base * (0.5 + 0.5 * self._rng.random())

    def verify(
        self, name: str, id_number: str, face_embedding: Sequence[float] | None = None
    ) -> LookupAnswer:
        """Ask the lookup about ``id_number`` / ``name`` (and the live face's embedding).

        Raises :class:`LookupUnavailable` when no verdict could be had and
        :class:`LookupRequestError` when the lookup refused the request (4xx).
        """
        payload: dict[str, Any] = {
            "name": name,
            "id_number": normalize_id_number(id_number),
            # float(): numpy float32 values are not JSON-serialisable as they are.
            "face_embedding": None
            if face_embedding is None
            else [float(v) for v in face_embedding],
        }
        masked = mask_id_number(id_number)
        started = time.perf_counter()
        attempts = 0
        while True:
            self.breaker.check(attempts)
            attempts += 1
            reason: Reason
            try:
                response = self._http.post("/v1/verify", json=payload)
            except httpx.TimeoutException:
                reason = "timeout"
            except httpx.TransportError:
                reason = "connection"
            except httpx.HTTPError as exc:
                # e.g. a body that fails to decode: the service is broken, not slow.
                self.breaker.record_failure()
                raise LookupUnavailable(
                    "bad_response", attempts=attempts, detail=type(exc).__name__
                ) from exc
            else:
                status = response.status_code
                if 200 <= status < 300:
                    answer = self._answer(response, attempts, started)
                    if answer is not None:
                        self.breaker.record_success()
                        return answer
                    # A 2xx that is not a verdict is a broken service, not a blip: no retry.
                    self.breaker.record_failure()
                    raise LookupUnavailable(
                        "bad_response", attempts=attempts, detail=f"HTTP {status}"
                    )
                if 400 <= status < 500:
                    # The lookup is up and answered; the request is what is wrong.
                    self.breaker.record_success()
                    code, detail = _error_of(response)
                    raise LookupRequestError(code, status_code=status, detail=detail)
                if status < 500:
                    self.breaker.record_failure()
                    raise LookupUnavailable(
                        "bad_response", attempts=attempts, detail=f"HTTP {status}"
                    )
                reason = "http_5xx"
            self.breaker.record_failure()
            logger.info("lookup %s: attempt %d failed (%s)", masked, attempts, reason)
            if attempts > self.retries:
                raise LookupUnavailable(reason, attempts=attempts)
            self._sleep(self.backoff_delay(attempts))

    @staticmethod
    def _answer(response: httpx.Response, attempts: int, started: float) -> LookupAnswer | None:
        try:
            body = response.json()
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        result = body.get("result")
        similarity = body.get("photo_similarity")
        request_id = body.get("request_id")
        if result not in RESULTS or not isinstance(request_id, str):
            return None
        if similarity is not None:
            if isinstance(similarity, bool) or not isinstance(similarity, int | float):
                return None
            if not math.isfinite(similarity):
                return None
        return LookupAnswer(
            result=str(result),
            photo_similarity=None if similarity is None else float(similarity),
            request_id=request_id,
            attempts=attempts,
            elapsed_ms=round((time.perf_counter() - started) * 1e3, 1),
        )


def _error_of(response: httpx.Response) -> tuple[str, Any]:
    """The dotted code and detail of an error answer; a generic code when it has none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], body.get("detail")
    return f"lookup.http_{response.status_code}", None
