"""LookupClient and CircuitBreaker: unit tests with a fake clock and a mock transport, and
retries, timeouts and fail-fast against the real service in a subprocess."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from services.lookup.client import (
    CircuitBreaker,
    LookupAnswer,
    LookupClient,
    LookupRequestError,
    LookupUnavailable,
)
from tests.lookup import (
    LI,
    PEOPLE,
    UNKNOWN_ID,
    WANG,
    ZHANG,
    ZHANG_FACE,
    LookupProcess,
    free_port,
    shifted,
    start_lookup,
    write_registry,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LookupProcess]:
    workdir = tmp_path_factory.mktemp("lookup_client")
    proc = start_lookup(write_registry(workdir / "registry.json", PEOPLE), workdir)
    yield proc
    proc.stop()


@pytest.fixture
def admin(service: LookupProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=5.0, trust_env=False) as client:
        yield client
        client.put("/admin/faults", json={"mode": "none"}).raise_for_status()


def set_faults(admin: httpx.Client, **faults: Any) -> None:
    admin.put("/admin/faults", json=faults).raise_for_status()


def served(admin: httpx.Client) -> int:
    return int(admin.get("/admin/stats").json()["verify_requests"])


def state_of(breaker: CircuitBreaker) -> str:
    return breaker.state


def fast_client(url: str, **kwargs: Any) -> LookupClient:
    """Short timeout and tiny backoff so that failure paths take well under a second."""
    options: dict[str, Any] = {"timeout_s": 0.5, "retries": 2, "backoff_s": 0.01}
    options.update(kwargs)
    return LookupClient(url, **options)


# --- circuit breaker, fake clock -------------------------------------------------------


def test_breaker_opens_after_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after_s=10.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # consecutive: a success starts the count again
    breaker.record_failure()
    breaker.record_failure()
    assert state_of(breaker) == "closed"
    assert breaker.allow()
    breaker.record_failure()
    assert state_of(breaker) == "open"
    assert not breaker.allow()
    with pytest.raises(LookupUnavailable) as caught:
        breaker.check()
    assert caught.value.reason == "circuit_open"
    clock.advance(9.9)
    assert not breaker.allow()


def test_breaker_half_open_allows_one_trial_and_success_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=10.0, clock=clock)
    breaker.record_failure()
    clock.advance(10.0)
    assert breaker.allow()  # the trial
    assert state_of(breaker) == "half_open"
    assert not breaker.allow()  # only one at a time
    breaker.record_success()
    assert state_of(breaker) == "closed"
    assert breaker.allow()
    assert breaker.allow()


def test_breaker_half_open_failure_reopens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=5, reset_after_s=10.0, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.advance(10.0)
    assert breaker.allow()
    breaker.record_failure()  # one failure suffices in half-open
    assert state_of(breaker) == "open"
    assert not breaker.allow()
    clock.advance(9.0)
    assert not breaker.allow()  # the reset period starts again at the failed trial
    clock.advance(1.0)
    assert breaker.allow()


def test_breaker_hands_out_a_new_trial_if_one_never_reports() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=5.0, clock=clock)
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.allow()
    clock.advance(4.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()


def test_breaker_counts_under_concurrency() -> None:
    breaker = CircuitBreaker(failure_threshold=10_000, reset_after_s=1.0)

    def fail_many() -> None:
        for _ in range(1000):
            breaker.record_failure()

    threads = [threading.Thread(target=fail_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.consecutive_failures == 8000
    assert state_of(breaker) == "closed"


def test_breaker_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="reset_after_s"):
        CircuitBreaker(reset_after_s=-1)


# --- client with a mock transport ------------------------------------------------------

OK_BODY = {
    "result": "match",
    "photo_similarity": 0.9,
    "request_id": "0" * 32,
    "checked_at": "2026-11-29T00:00:00+00:00",
}


def mock_client(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any
) -> tuple[LookupClient, list[float]]:
    sleeps: list[float] = []
    options: dict[str, Any] = {
        "transport": httpx.MockTransport(handler),
        "sleep": sleeps.append,
        "rng": random.Random(0),
    }
    options.update(kwargs)
    return LookupClient("http://lookup.test", **options), sleeps


def test_request_payload_is_normalised() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=OK_BODY)

    client, _ = mock_client(handler)
    answer = client.verify("张三", " 11010119900307002x ", face_embedding=(1, 0.5))
    assert answer == LookupAnswer("match", 0.9, "0" * 32, 1, answer.elapsed_ms)
    assert seen[0].url.path == "/v1/verify"
    body = httpx.Response(200, content=seen[0].content).json()
    assert body == {"name": "张三", "id_number": "11010119900307002X", "face_embedding": [1.0, 0.5]}


def test_backoff_is_exponential_jittered_and_bounded() -> None:
    client = LookupClient(
        "http://lookup.test", backoff_s=0.2, max_backoff_s=1.0, rng=random.Random(1)
    )
    for attempt, base in [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (10, 1.0)]:
        delays = [client.backoff_delay(attempt) for _ in range(50)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert len(set(delays)) > 1
    client.close()


def test_retries_sleep_between_attempts() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(502) if len(calls) < 3 else httpx.Response(200, json=OK_BODY)

    client, sleeps = mock_client(handler, retries=2, backoff_s=0.2)
    answer = client.verify("张三", ZHANG["id_number"])
    assert answer.attempts == 3
    assert len(sleeps) == 2
    assert 0.1 <= sleeps[0] <= 0.2
    assert 0.2 <= sleeps[1] <= 0.4


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json=["match"]),
        httpx.Response(200, json={**OK_BODY, "result": "maybe"}),
        httpx.Response(200, json={**OK_BODY, "photo_similarity": "high"}),
        httpx.Response(200, json={**OK_BODY, "request_id": None}),
        httpx.Response(302, headers={"location": "/elsewhere"}),
    ],
)
def test_unusable_answers_are_bad_response_without_retry(response: httpx.Response) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return response

    client, _ = mock_client(handler, retries=3)
    with pytest.raises(LookupUnavailable) as caught:
        client.verify("张三", ZHANG["id_number"])
    assert (caught.value.reason, caught.value.attempts, len(calls)) == ("bad_response", 1, 1)
    assert client.breaker.consecutive_failures == 1


def test_4xx_without_error_body_gets_a_generic_code() -> None:
    client, _ = mock_client(lambda request: httpx.Response(429, text="slow down"))
    with pytest.raises(LookupRequestError) as caught:
        client.verify("张三", ZHANG["id_number"])
    assert (caught.value.code, caught.value.status_code) == ("lookup.http_429", 429)


def test_failed_half_open_trial_stops_the_retries() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=5.0, clock=clock)
    breaker.record_failure()
    clock.advance(5.0)
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503)

    client, _ = mock_client(handler, retries=3, breaker=breaker)
    with pytest.raises(LookupUnavailable) as caught:
        client.verify("张三", ZHANG["id_number"])
    assert (caught.value.reason, caught.value.attempts, len(calls)) == ("circuit_open", 1, 1)
    assert state_of(breaker) == "open"


def test_client_arguments_are_checked() -> None:
    for bad in ({"timeout_s": 0}, {"retries": -1}, {"backoff_s": -0.1}):
        with pytest.raises(ValueError, match="must"):
            LookupClient("http://lookup.test", **bad)


# --- client against the real service ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "id_number", "face", "result", "similarity"),
    [
        ("张三", ZHANG["id_number"], shifted(ZHANG_FACE, 0.6), "match", 0.5),
        ("张三", ZHANG["id_number"], None, "match", None),
        ("李四", LI["id_number"].lower(), ZHANG_FACE, "no_photo", None),
        ("王五", WANG["id_number"], None, "cancelled", None),
        ("张三", UNKNOWN_ID, None, "not_found", None),
    ],
)
def test_verify_answers(
    service: LookupProcess,
    name: str,
    id_number: str,
    face: list[float] | None,
    result: str,
    similarity: float | None,
) -> None:
    with fast_client(service.url) as client:
        answer = client.verify(name, id_number, face)
    assert (answer.result, answer.photo_similarity, answer.attempts) == (result, similarity, 1)
    assert len(answer.request_id) == 32
    assert answer.elapsed_ms > 0


def test_errors_are_retried_then_unavailable(service: LookupProcess, admin: httpx.Client) -> None:
    set_faults(admin, mode="error", failure_rate=1.0)
    before = served(admin)
    with fast_client(service.url, retries=2) as client, pytest.raises(LookupUnavailable) as caught:
        client.verify("张三", ZHANG["id_number"])
    assert (caught.value.reason, caught.value.attempts) == ("http_5xx", 3)
    assert served(admin) == before + 3


def test_outage_is_http_5xx(service: LookupProcess, admin: httpx.Client) -> None:
    set_faults(admin, mode="outage")
    before = served(admin)
    with fast_client(service.url, retries=1) as client, pytest.raises(LookupUnavailable) as caught:
        client.verify("张三", ZHANG["id_number"])
    assert (caught.value.reason, caught.value.attempts) == ("http_5xx", 2)
    assert served(admin) == before + 2


def test_timeouts_are_retried_then_unavailable(service: LookupProcess, admin: httpx.Client) -> None:
    set_faults(admin, mode="timeout")
    before = served(admin)
    started = time.monotonic()
    with fast_client(service.url, retries=1) as client, pytest.raises(LookupUnavailable) as caught:
        client.verify("张三", ZHANG["id_number"])
    assert (caught.value.reason, caught.value.attempts) == ("timeout", 2)
    assert time.monotonic() - started < 3  # 2 x 0.5 s, not 30 s
    assert served(admin) == before + 2


def test_latency_below_the_timeout_is_fine(service: LookupProcess, admin: httpx.Client) -> None:
    set_faults(admin, latency_ms=150)
    with fast_client(service.url) as client:
        answer = client.verify("张三", ZHANG["id_number"])
    assert (answer.result, answer.attempts) == ("match", 1)
    assert answer.elapsed_ms >= 150


def test_latency_above_the_timeout_times_out(service: LookupProcess, admin: httpx.Client) -> None:
    set_faults(admin, latency_ms=800)
    with fast_client(service.url, retries=0) as client, pytest.raises(LookupUnavailable) as caught:
        client.verify("张三", ZHANG["id_number"])
    assert (caught.value.reason, caught.value.attempts) == ("timeout", 1)


def test_partial_errors_are_absorbed_by_retries(
    service: LookupProcess, admin: httpx.Client
) -> None:
    # failure_rate 0.5 and 20 retries: 21 failures in a row (odds 1 in 2 million) would be
    # needed to fail. The breaker counts every failed attempt, so its default threshold of
    # 5 would open now and then: raise it. Every retried call shows up in the served count.
    set_faults(admin, mode="error", failure_rate=0.5)
    before = served(admin)
    breaker = CircuitBreaker(failure_threshold=1000)
    with fast_client(
        service.url, retries=20, backoff_s=0.001, max_backoff_s=0.01, breaker=breaker
    ) as client:
        answers = [client.verify("张三", ZHANG["id_number"]) for _ in range(3)]
    assert all(a.result == "match" for a in answers)
    assert served(admin) == before + sum(a.attempts for a in answers)


def test_connection_refused() -> None:
    with fast_client(f"http://127.0.0.1:{free_port()}", retries=1) as client:
        with pytest.raises(LookupUnavailable) as caught:
            client.verify("张三", ZHANG["id_number"])
    assert (caught.value.reason, caught.value.attempts) == ("connection", 2)


def test_4xx_is_not_retried(service: LookupProcess, admin: httpx.Client) -> None:
    bad_before = admin.get("/admin/stats").json()["by_outcome"].get("bad_request", 0)
    with fast_client(service.url, retries=3) as client:
        with pytest.raises(LookupRequestError) as caught:
            client.verify("张三", "12345")
        assert client.breaker.consecutive_failures == 0  # the lookup is up
    assert isinstance(caught.value, ValueError)
    assert (caught.value.code, caught.value.status_code) == ("lookup.bad_request", 422)
    bad_after = admin.get("/admin/stats").json()["by_outcome"]["bad_request"]
    assert bad_after == bad_before + 1


def test_open_circuit_fails_fast_then_recovers(service: LookupProcess, admin: httpx.Client) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_after_s=30.0, clock=clock)
    set_faults(admin, mode="outage")
    with fast_client(service.url, retries=0, breaker=breaker) as client:
        for _ in range(2):
            with pytest.raises(LookupUnavailable, match="http_5xx"):
                client.verify("张三", ZHANG["id_number"])
        assert state_of(breaker) == "open"

        before = served(admin)
        started = time.perf_counter()
        with pytest.raises(LookupUnavailable) as caught:
            client.verify("张三", ZHANG["id_number"])
        assert (caught.value.reason, caught.value.attempts) == ("circuit_open", 0)
        assert time.perf_counter() - started < 0.25  # vs 0.5 s per real attempt
        assert served(admin) == before  # nothing reached the service

        # After the reset period one trial goes out; the service is back, so it closes.
        set_faults(admin, mode="none")
        clock.advance(30.0)
        assert client.verify("张三", ZHANG["id_number"]).result == "match"
        assert state_of(breaker) == "closed"
        assert served(admin) == before + 1
