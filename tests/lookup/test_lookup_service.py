"""The mock lookup service over real HTTP (one subprocess for the module), its registry
and its command line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.lookup.app import photo_similarity
from services.lookup.registry import (
    Person,
    Registry,
    RegistryError,
    mask_id_number,
    parse_person,
)
from tests.lookup import (
    ALL_IDS,
    LI,
    PEOPLE,
    ROOT,
    UNKNOWN_ID,
    WANG,
    ZHANG,
    ZHANG_FACE,
    ZHAO,
    ZHAO_FACE,
    LookupProcess,
    embedding,
    shifted,
    start_lookup,
    write_registry,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LookupProcess]:
    workdir = tmp_path_factory.mktemp("lookup_service")
    proc = start_lookup(write_registry(workdir / "registry.json", PEOPLE), workdir)
    yield proc
    proc.stop()


@pytest.fixture
def http(service: LookupProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=5.0, trust_env=False) as client:
        yield client
        # Faults must not leak into the next test.
        client.put("/admin/faults", json={"mode": "none"}).raise_for_status()


def verify(http: httpx.Client, name: str, id_number: str, face: Any = None) -> httpx.Response:
    return http.post(
        "/v1/verify", json={"name": name, "id_number": id_number, "face_embedding": face}
    )


def verify_requests(http: httpx.Client) -> int:
    return int(http.get("/admin/stats").json()["verify_requests"])


# --- verdicts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "id_number", "face", "result", "similarity"),
    [
        ("张三", UNKNOWN_ID, None, "not_found", None),
        ("王五", WANG["id_number"], None, "cancelled", None),
        # Status comes before the name, and similarity is withheld for anything but match.
        ("someone else", WANG["id_number"], None, "cancelled", None),
        ("赵六", ZHAO["id_number"], ZHAO_FACE, "deceased", None),
        ("李四四", ZHANG["id_number"], ZHANG_FACE, "name_mismatch", None),
        ("李四", LI["id_number"], ZHANG_FACE, "no_photo", None),
        ("张三", ZHANG["id_number"], None, "match", None),
        ("张三", ZHANG["id_number"], ZHANG_FACE, "match", 1.0),
        ("张三", ZHANG["id_number"], shifted(ZHANG_FACE, 0.6), "match", 0.5),
        ("张三", ZHANG["id_number"], shifted(ZHANG_FACE, 0.3), "match", 0.75),
        ("张三", ZHANG["id_number"], shifted(ZHANG_FACE, 2.0), "match", 0.0),
    ],
)
def test_verdicts(
    http: httpx.Client,
    name: str,
    id_number: str,
    face: list[float] | None,
    result: str,
    similarity: float | None,
) -> None:
    response = verify(http, name, id_number, face)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == result
    assert body["photo_similarity"] == similarity


def test_answer_carries_request_id_and_utc_time(http: httpx.Client) -> None:
    before = datetime.now(UTC)
    body = verify(http, "张三", ZHANG["id_number"]).json()
    assert set(body) == {"result", "photo_similarity", "request_id", "checked_at"}
    assert uuid.UUID(hex=body["request_id"]).version == 4
    assert len(body["request_id"]) == 32
    checked = datetime.fromisoformat(body["checked_at"])
    assert checked.utcoffset() is not None
    assert checked.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((checked - before).total_seconds()) < 5
    assert verify(http, "张三", ZHANG["id_number"]).json()["request_id"] != body["request_id"]


def test_lower_case_check_character_and_whitespace_in_names(http: httpx.Client) -> None:
    assert verify(http, " 李四\u3000", LI["id_number"].lower()).json()["result"] == "no_photo"
    assert verify(http, "张 三", ZHANG["id_number"]).json()["result"] == "match"


def test_similarity_formula() -> None:
    a = embedding(10)
    b = embedding(11)
    expected = round(max(0.0, 1.0 - math.dist(a, b) / 1.2), 4)
    assert photo_similarity(a, b) == expected
    assert photo_similarity(a, a) == 1.0


# --- one error shape, validation ------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"name": "张三", "id_number": "11010119900307001"},  # 17 chars
        {"name": "张三", "id_number": "1101011990030700111"},  # 19 chars
        {"name": "张三", "id_number": "11010119900307001Y"},
        {"name": "张三", "id_number": "X10101199003070011"},
        {"name": "张三", "id_number": "１10101199003070011"},  # full-width digit
        {"name": "张三", "id_number": 110101199003070011},
        {"name": "", "id_number": ZHANG["id_number"]},
        {"name": "   ", "id_number": ZHANG["id_number"]},
        {"name": "张" * 65, "id_number": ZHANG["id_number"]},
        {"name": 3, "id_number": ZHANG["id_number"]},
        {"id_number": ZHANG["id_number"]},
        {"name": "张三"},
        {"name": "张三", "id_number": ZHANG["id_number"], "face_embedding": ZHANG_FACE[:127]},
        {"name": "张三", "id_number": ZHANG["id_number"], "face_embedding": [*ZHANG_FACE, 0.1]},
        {"name": "张三", "id_number": ZHANG["id_number"], "face_embedding": [True] * 128},
        {"name": "张三", "id_number": ZHANG["id_number"], "face_embedding": ["0.1"] * 128},
        {"name": "张三", "id_number": ZHANG["id_number"], "face_embedding": "0.1"},
        {"name": "张三", "id_number": ZHANG["id_number"], "face_embedding": []},
    ],
)
def test_bad_requests_are_422_without_echoing_input(
    http: httpx.Client, body: dict[str, Any]
) -> None:
    response = http.post("/v1/verify", json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "lookup.bad_request"
    assert isinstance(answer["detail"], list)
    assert answer["detail"]
    assert ZHANG["id_number"] not in response.text


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_embedding_is_refused(http: httpx.Client, token: str) -> None:
    # Python's json accepts these tokens; the service must not.
    values = ", ".join([token] + ["0.1"] * 127)
    raw = f'{{"name": "张三", "id_number": "{ZHANG["id_number"]}", "face_embedding": [{values}]}}'
    response = http.post(
        "/v1/verify", content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "lookup.bad_request"


def test_body_that_is_not_json(http: httpx.Client) -> None:
    response = http.post(
        "/v1/verify", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "lookup.bad_request"


def test_bad_requests_are_counted_apart(http: httpx.Client) -> None:
    before = http.get("/admin/stats").json()
    http.post("/v1/verify", json={"name": "张三"})
    after = http.get("/admin/stats").json()
    assert after["verify_requests"] == before["verify_requests"]
    assert after["by_outcome"]["bad_request"] == before["by_outcome"].get("bad_request", 0) + 1


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "lookup.no_such_route"),
        ("GET", "/v1/verify", 405, "lookup.method_not_allowed"),
    ],
)
def test_http_errors_share_the_shape(
    http: httpx.Client, method: str, path: str, status: int, code: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == status
    assert response.json() == {"error": code, "detail": response.json()["detail"]}
    assert response.json()["error"] == code


# --- health, stats, registry admin ----------------------------------------------------


def test_healthz(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok", "people": len(PEOPLE)}


def test_stats_count_every_verify(http: httpx.Client) -> None:
    before = verify_requests(http)
    for _ in range(3):
        verify(http, "张三", ZHANG["id_number"])
    assert verify_requests(http) == before + 3


def test_registry_upsert_and_delete(http: httpx.Client) -> None:
    new_id = "44030119851111003X"
    entry = {"name": "陈七", "status": "valid", "photo_embedding": embedding(7)}
    try:
        created = http.put(f"/admin/registry/{new_id.lower()}", json=entry)
        assert created.status_code == 200, created.text
        assert created.json() == {"created": True, "people": len(PEOPLE) + 1}
        assert http.get("/healthz").json()["people"] == len(PEOPLE) + 1
        answer = verify(http, "陈七", new_id, embedding(7)).json()
        assert (answer["result"], answer["photo_similarity"]) == ("match", 1.0)

        replaced = http.put(
            f"/admin/registry/{new_id}", json={**entry, "id_number": new_id, "status": "deceased"}
        )
        assert replaced.json() == {"created": False, "people": len(PEOPLE) + 1}
        assert verify(http, "陈七", new_id).json()["result"] == "deceased"

        deleted = http.delete(f"/admin/registry/{new_id}")
        assert deleted.json() == {"deleted": True, "people": len(PEOPLE)}
        assert verify(http, "陈七", new_id).json()["result"] == "not_found"

        again = http.delete(f"/admin/registry/{new_id}")
        assert again.status_code == 404
        assert again.json() == {"error": "lookup.person_not_found", "detail": "440***********003X"}
    finally:
        http.delete(f"/admin/registry/{new_id}")


@pytest.mark.parametrize(
    ("path_id", "entry"),
    [
        ("12345", {"name": "陈七", "status": "valid", "photo_embedding": None}),
        (UNKNOWN_ID, {"name": "陈七", "status": "alive", "photo_embedding": None}),
        (UNKNOWN_ID, {"name": "", "status": "valid", "photo_embedding": None}),
        (UNKNOWN_ID, {"name": "陈七", "status": "valid", "photo_embedding": [0.1] * 3}),
        (UNKNOWN_ID, {"name": "陈七", "status": "valid", "id_number": ZHANG["id_number"]}),
        (UNKNOWN_ID, {"name": "陈七", "status": "valid", "extra": 1}),
    ],
)
def test_registry_upsert_is_validated(
    http: httpx.Client, path_id: str, entry: dict[str, Any]
) -> None:
    response = http.put(f"/admin/registry/{path_id}", json=entry)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "lookup.bad_request"
    assert http.get("/healthz").json()["people"] == len(PEOPLE)


# --- faults ---------------------------------------------------------------------------


def test_faults_default_and_validation(http: httpx.Client) -> None:
    assert http.get("/admin/faults").json() == {
        "mode": "none",
        "failure_rate": 1.0,
        "latency_ms": 0,
    }
    for bad in ({"mode": "explode"}, {"mode": "error", "failure_rate": 1.5}, {"latency_ms": -1}):
        response = http.put("/admin/faults", json=bad)
        assert response.status_code == 422
        assert response.json()["error"] == "lookup.bad_request"
    set_ = http.put("/admin/faults", json={"mode": "error", "failure_rate": 0.25})
    assert set_.json() == {"mode": "error", "failure_rate": 0.25, "latency_ms": 0}
    assert http.get("/admin/faults").json() == set_.json()


def test_outage(http: httpx.Client) -> None:
    http.put("/admin/faults", json={"mode": "outage", "failure_rate": 0.0}).raise_for_status()
    for _ in range(3):  # outage ignores failure_rate: every request fails
        response = verify(http, "张三", ZHANG["id_number"])
        assert response.status_code == 503
        assert response.json()["error"] == "lookup.outage"
    assert http.get("/healthz").status_code == 200  # only /v1/verify is affected


def test_error_at_full_rate(http: httpx.Client) -> None:
    http.put("/admin/faults", json={"mode": "error"}).raise_for_status()
    response = verify(http, "张三", ZHANG["id_number"])
    assert response.status_code == 500
    assert response.json()["error"] == "lookup.internal"


def test_error_at_zero_rate_never_fires(http: httpx.Client) -> None:
    http.put("/admin/faults", json={"mode": "error", "failure_rate": 0.0}).raise_for_status()
    assert all(verify(http, "张三", ZHANG["id_number"]).status_code == 200 for _ in range(5))


def test_latency_is_added(http: httpx.Client) -> None:
    http.put("/admin/faults", json={"latency_ms": 300}).raise_for_status()
    started = time.monotonic()
    response = verify(http, "张三", ZHANG["id_number"])
    assert response.json()["result"] == "match"
    assert time.monotonic() - started >= 0.3


def test_timeout_holds_the_answer_and_ends_when_the_client_leaves(http: httpx.Client) -> None:
    http.put("/admin/faults", json={"mode": "timeout"}).raise_for_status()
    closed_before = http.get("/admin/stats").json()["by_outcome"].get("client_closed", 0)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        http.post(
            "/v1/verify",
            json={"name": "张三", "id_number": ZHANG["id_number"]},
            timeout=0.5,
        )
    assert time.monotonic() - started < 2
    # The abandoned request must not sleep on for 30 s.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        outcomes = http.get("/admin/stats").json()["by_outcome"]
        if outcomes.get("client_closed", 0) > closed_before:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the server kept sleeping after the client had gone")


# --- registry file --------------------------------------------------------------------


def test_registry_file_round_trip(tmp_path: Path) -> None:
    registry = Registry.load(write_registry(tmp_path / "r.json", PEOPLE))
    assert len(registry) == len(PEOPLE)
    zhao = registry.get(ZHAO["id_number"])
    assert zhao == Person(ZHAO["id_number"], "赵六", "deceased", tuple(ZHAO_FACE))
    assert registry.get(LI["id_number"].lower()) is not None  # keyed by upper-case X
    registry.save(tmp_path / "copy.json")
    assert Registry.load(tmp_path / "copy.json").snapshot() == registry.snapshot()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": 2, "people": []}, "version"),
        ({"version": 1}, "people"),
        ([], "JSON object"),
        ({"version": 1, "people": [{**ZHANG, "photo_embedding": None}] * 2}, "duplicate"),
        ({"version": 1, "people": [{**ZHANG, "status": "alive"}]}, "status"),
        ({"version": 1, "people": [{**ZHANG, "id_number": "123"}]}, "id_number"),
        ({"version": 1, "people": [{**ZHANG, "photo_embedding": [0.0] * 127}]}, "128"),
        ({"version": 1, "people": [{**ZHANG, "photo_embedding": [math.inf] * 128}]}, "finite"),
        ({"version": 1, "people": [{**ZHANG, "name": 5}]}, "name"),
    ],
)
def test_bad_registry_files(tmp_path: Path, data: Any, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RegistryError, match=message) as caught:
        Registry.load(path)
    assert ZHANG["id_number"] not in str(caught.value)  # masked in messages


def test_registry_updates_are_thread_safe() -> None:
    registry = Registry()
    ids = [f"{i:017d}X" for i in range(400)]

    def work(chunk: list[str]) -> None:
        for id_number in chunk:
            registry.upsert(parse_person({"id_number": id_number, "name": "某", "status": "valid"}))
            assert registry.get(id_number) is not None
        for id_number in chunk[::2]:
            assert registry.remove(id_number)

    threads = [threading.Thread(target=work, args=(ids[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(registry) == 200


def test_mask_id_number() -> None:
    assert mask_id_number("11010119900307002X") == "110***********002X"
    assert mask_id_number("12345") == "*****"


# --- command line ---------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.lookup", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_cli_missing_registry(tmp_path: Path) -> None:
    done = run_cli("--registry", str(tmp_path / "absent.json"))
    assert done.returncode == 2
    assert "cannot read registry" in done.stderr
    assert "absent.json" in done.stderr


def test_cli_invalid_registry(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"version": 1, "people": [{"id_number": "1"}]}', encoding="utf-8")
    done = run_cli("--registry", str(path))
    assert done.returncode == 2
    assert "people[0]" in done.stderr


def test_service_prints_where_it_listens(service: LookupProcess) -> None:
    first = service.output().splitlines()[0]
    assert first == f"lookup listening on {service.url} (4 people loaded, faults: none)"


# Last on purpose: it reads everything the service logged during this module.
def test_logs_never_hold_raw_id_numbers(http: httpx.Client, service: LookupProcess) -> None:
    verify(http, "张三", ZHANG["id_number"])
    log = service.output()
    assert "110***********0011" in log  # the service did log verifies (at --log-level info)
    for id_number in [*ALL_IDS, "44030119851111003X"]:
        assert id_number not in log
        assert id_number.lower() not in log
