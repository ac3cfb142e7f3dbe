"""The ``simgate`` CLI contract: JSON on stdout, exit 0 processed, 2 unreadable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import idcard_captures

CAPTURES = idcard_captures()


def simgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_read_id_json_contract() -> None:
    gt = next(g for g in CAPTURES if g["kind"] == "perspective")
    proc = simgate("read-id", gt["front_path"], gt["back_path"], "--json", "--today", "2026-11-29")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["inputs"] == [gt["front_path"], gt["back_path"]]
    assert [s["side"] for s in out["sides"]] == ["portrait", "emblem"]
    assert out["fields"]["id_number"] == gt["identity"]["id_number"]
    assert out["fields"]["valid_to"] == gt["identity"]["valid_to"]
    for key in ("checks", "warnings", "errors", "quality", "timings_ms", "confidence"):
        assert key in out
    assert out["checks"]["id_number_checksum"] is True


@pytest.mark.slow
def test_read_id_batch_keeps_order_and_reports_bad_lines(tmp_path: Path) -> None:
    a, b = CAPTURES[0], CAPTURES[1]
    bad = tmp_path / "not-an-image.jpg"
    bad.write_text("hello", encoding="utf-8")
    listing = tmp_path / "list.tsv"
    listing.write_text(
        f"{a['front_path']}\t{a['back_path']}\n{bad}\n{b['front_path']}\n", encoding="utf-8"
    )
    proc = simgate("read-id", "--batch", str(listing), "--today", "2026-11-29")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["inputs"] for r in rows] == [
        [a["front_path"], a["back_path"]],
        [str(bad)],
        [b["front_path"]],
    ]
    assert rows[1]["error"] == "image.unsupported_format"
    assert "fields" in rows[0]
    assert "fields" in rows[2]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "image.empty"),
        (b"%PDF-1.4 not an image", "image.unsupported_format"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image.corrupt"),
        (Path(CAPTURES[0]["front_path"]).read_bytes()[:20000], "image.truncated"),
    ],
    ids=["empty", "pdf", "header-only-jpeg", "truncated-jpeg"],
)
def test_read_id_unreadable_exits_2_with_json_error(
    tmp_path: Path, content: bytes, code: str
) -> None:
    path = tmp_path / "input.jpg"
    path.write_bytes(content)
    proc = simgate("read-id", str(path), "--json")
    assert proc.returncode == 2
    out = json.loads(proc.stdout)
    assert out["error"] == code
    assert out["inputs"] == [str(path)]


def test_read_id_missing_file_exits_2(tmp_path: Path) -> None:
    proc = simgate("read-id", str(tmp_path / "nope.jpg"), "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"].startswith("image.")


def test_read_id_bad_date_is_a_usage_error() -> None:
    gt = CAPTURES[0]
    proc = simgate("read-id", gt["front_path"], "--today", "yesterday")
    assert proc.returncode == 2
    assert "YYYY-MM-DD" in proc.stderr
