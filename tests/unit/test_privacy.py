"""R10: ID numbers masked for display and logs, and hashed with a key for card counts."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from services.privacy import (
    MaskIdNumbersFilter,
    id_hash,
    install_log_masking,
    mask_id_number,
    mask_text,
)

NUMBER = "110105199001011234"
NUMBER_X = "53232819960626246X"


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        (NUMBER, "110***********1234"),
        (NUMBER_X, "532***********246X"),
        ("53232819960626246x", "532***********246X"),
        (f"  {NUMBER}\n", "110***********1234"),
        ("110105900101123", "110********1123"),  # first-generation, 15 digits
        ("1234567", "*******"),
        ("12", "**"),
        ("", None),
        (None, None),
    ],
)
def test_mask_id_number(number: str | None, masked: str | None) -> None:
    assert mask_id_number(number) == masked
    if masked and len(masked) > 7:
        assert len(masked) == len(number.strip())  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"id {NUMBER} rejected", "id 110***********1234 rejected"),
        (f"身份证号{NUMBER}已提交", "身份证号110***********1234已提交"),
        (f"身份证号：{NUMBER_X}。", "身份证号：532***********246X。"),
        (f'{{"id_number":"{NUMBER}"}}', '{"id_number":"110***********1234"}'),
        (f"{NUMBER},{NUMBER_X}", "110***********1234,532***********246X"),
        (f"file {NUMBER}_front.jpg", "file 110***********1234_front.jpg"),
        (f"{NUMBER}", "110***********1234"),
    ],
)
def test_mask_text_in_sentences(text: str, masked: str) -> None:
    assert mask_text(text) == masked
    assert NUMBER not in mask_text(text)
    assert NUMBER_X not in mask_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "card 1101051990010112345 is 19 digits",  # a 19-digit number (a bank card)
        "ICCID 89860012345678901234",
        "call 13812345678 or +86 138 1234 5678",  # mobile numbers
        "order ord_8f3a2b1c9d0e and msisdn 13011000001",
        "010105199001011234 starts with 0",  # not a region code
        "12345678901234567 is 17 digits",
        "",
    ],
)
def test_mask_text_leaves_other_numbers(text: str) -> None:
    assert mask_text(text) == text


def test_id_hash_keyed_and_stable() -> None:
    h = id_hash("key-1", NUMBER)
    assert h == id_hash("key-1", NUMBER)
    assert h == id_hash("key-1", f" {NUMBER} ")
    assert len(h) == 64
    assert int(h, 16) >= 0
    assert NUMBER not in h
    assert id_hash("key-2", NUMBER) != h  # keyed: not a plain SHA-256
    assert id_hash("key-1", "110105199001011235") != h
    assert id_hash("key-1", "53232819960626246x") == id_hash("key-1", NUMBER_X)
    import hashlib

    assert h != hashlib.sha256(NUMBER.encode()).hexdigest()


@pytest.fixture
def clean_root_filters() -> Iterator[None]:
    root = logging.getLogger()
    before = list(root.filters)
    yield
    for f in list(root.filters):
        if f not in before:
            root.removeFilter(f)


@pytest.mark.usefixtures("clean_root_filters")
def test_log_filter_masks_logged_id_number(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    install_log_masking()
    install_log_masking()  # idempotent: one factory

    logging.getLogger("services.test").info("declared %s for %s", NUMBER, "ord_1")
    logging.getLogger().warning("read %s", NUMBER_X)
    logging.getLogger("services.test").info("nothing to mask: %d", 13812345678)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "declared 110***********1234 for ord_1",
        "read 532***********246X",
        "nothing to mask: 13812345678",
    ]
    assert NUMBER not in caplog.text
    assert NUMBER_X not in caplog.text


def test_filter_keeps_args_when_nothing_to_mask() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "n=%d", (5,), None)
    assert MaskIdNumbersFilter().filter(record)
    assert (record.msg, record.args) == ("n=%d", (5,))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "id=%s", (NUMBER,), None)
    assert MaskIdNumbersFilter().filter(record)
    assert (record.msg, record.args) == ("id=110***********1234", None)


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.usefixtures("clean_root_filters")
def test_log_masking_covers_handlers_added_later(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    # As in the API process: root has no handlers when create_app() installs the masking
    # (pytest's own handlers are set aside; their filters would mask the shared record).
    monkeypatch.setattr(root, "handlers", [])
    install_log_masking()
    handler = _ListHandler()
    root.addHandler(handler)
    logging.getLogger("services.api.app").warning("unexpected error for %s", NUMBER)
    assert handler.messages == ["unexpected error for 110***********1234"]
