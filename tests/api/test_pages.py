"""The customer, courier and storefront pages in-process: rendered, locked down by their
headers, static files from an allow-list, and plain words for every code they can meet.
The pages in a real browser against the real stack: tests/browser."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api import page_text
from services.api.app import create_app
from services.config import Settings
from services.domain.reasons import EFFECTS
from services.domain.states import LIVENESS_ACTIONS
from services.storage.db import engine_for, upgrade

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("/activate", "/courier", "/storefront")
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.I)
PAGE_TEXT = re.compile(r'<script type="application/json" id="page-text">(.*?)</script>', re.S)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, env="test", redis_url="redis://127.0.0.1:1/0")
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings)) as c:
        yield c
    engine_for(settings.resolved_database_url).dispose()


@pytest.mark.parametrize("path", PAGES)
def test_page_runs_only_scripts_of_its_own_origin(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = dict(
        part.strip().split(" ", 1) for part in r.headers["content-security-policy"].split(";")
    )
    assert csp["script-src"] == "'self'"
    assert csp["default-src"] == "'none'"
    assert csp["connect-src"] == "'self'"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "camera=(self)" in r.headers["permissions-policy"]
    tags = SCRIPT_TAG.findall(r.text)
    assert tags, "the page has its scripts"
    # Every script is a file of this origin, or inert JSON data.
    for attrs in tags:
        assert re.search(r'src="/static/[a-z]+\.js"', attrs) or 'type="application/json"' in attrs
    assert "http://" not in r.text  # nothing from elsewhere
    assert "https://" not in r.text
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text):
        assert client.get(src).status_code == 200, src


def test_static_files_come_from_an_allow_list(client: TestClient) -> None:
    js = client.get("/static/activate.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "MediaRecorder" in js.text
    assert client.get("/static/pages.css").headers["content-type"].startswith("text/css")
    for bad in ("/static/nope.js", "/static/..%2Fpages.py", "/static/%2E%2E%2Fapp.py"):
        r = client.get(bad)
        assert r.status_code == 404, bad
        assert "def " not in r.text


def test_activation_link_fills_the_form_with_well_formed_values_only(client: TestClient) -> None:
    ok = client.get("/activate", params={"iccid": "89860012345678901234", "code": "K7Q2M9"})
    assert 'value="89860012345678901234"' in ok.text
    assert 'value="K7Q2M9"' in ok.text
    evil = client.get("/activate", params={"iccid": '"><script>alert(1)</script>', "code": "x"})
    assert evil.status_code == 200
    assert "alert(1)" not in evil.text
    assert 'value=""' in evil.text


@pytest.mark.parametrize(
    ("path", "page"), [("/activate", "activate"), ("/courier", "courier"), ("/storefront", "order")]
)
def test_page_embeds_its_texts_as_inert_json(client: TestClient, path: str, page: str) -> None:
    found = PAGE_TEXT.search(client.get(path).text)
    assert found is not None
    assert json.loads(found.group(1)) == page_text.texts_for(page)


def _codes(path: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, (ROOT / path).read_text(encoding="utf-8")))


API_CODE = r'code="([a-z_]+\.[a-z_]+)"'
APPENDED = r'(?:reasons|final)\.append\("([a-z_]+\.[a-z_]+)"\)'


def test_every_code_a_page_can_meet_has_plain_words() -> None:
    activate = {**page_text.COMMON, **page_text.ACTIVATE}
    courier = {**page_text.COMMON, **page_text.COURIER}
    order = {**page_text.COMMON, **page_text.ORDER}
    uploads = _codes("services/api/uploads.py", API_CODE)
    auth = _codes("services/api/deps.py", API_CODE) - {"auth.wrong_role", "staff.inactive"}
    need = {
        "activate": (
            _codes("services/api/activations.py", API_CODE)
            | _codes("services/workers/activation.py", APPENDED)
            | _codes("vision/liveness.py", APPENDED)
            | uploads
        ),
        "courier": (
            _codes("services/api/deliveries.py", API_CODE)
            | _codes("services/workers/handover.py", APPENDED)
            | uploads
            | auth
        )
        - {"courier.not_found"},  # logistics only
        "order": (
            set(EFFECTS)
            | _codes("services/api/orders.py", API_CODE)
            | uploads
            | (auth - {"courier.inactive"})
        )
        # The callback URL is not on the demo form; cancelling is not on the page.
        - {"order.bad_callback_url", "order.not_decided", "order.sim_active"},
    }
    have = {"activate": activate, "courier": courier, "order": order}
    # Sanity: the scans found what the modules raise.
    assert {"liveness.challenge_failed", "face.changed", "activation.locked"} <= need["activate"]
    assert {"handover.card_mismatch", "delivery.closed"} <= need["courier"]
    for page, codes in need.items():
        missing = sorted(c for c in codes if c not in have[page])
        assert not missing, (page, missing)
    for table in (activate, courier, order):
        for code, t in table.items():
            assert t["zh"], code
            assert t["en"], code
            assert ("next_zh" in t) == ("next_en" in t), code


def test_every_liveness_action_has_an_instruction() -> None:
    assert set(page_text.ACTIONS) == set(LIVENESS_ACTIONS)


def test_index_links_to_every_page_and_each_link_answers(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    links = re.findall(r'<a href="(/[^"]*)"', r.text)
    assert set(PAGES) <= set(links)
    assert "/backoffice/" in links
    for link in links:
        answer = client.get(link, follow_redirects=True)
        assert answer.status_code == 200, link
