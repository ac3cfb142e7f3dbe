"""``simgate demo`` and ``simgate bench pipeline``: the fast parts (no stack is started).

The end-to-end runs need the whole stack and minutes of CPU: run them by hand
(``simgate up`` + ``simgate demo``; ``simgate bench pipeline --count 30 --paced-count 20``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.bench.pipeline import bench_pipeline, parse_time, per_minute, percentile, ratio
from services.config import get_settings
from services.demo import demo, load_fixture_orders


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SIMGATE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_demo_help() -> None:
    result = CliRunner().invoke(demo, ["--help"])
    assert result.exit_code == 0, result.output
    for option in ("--api", "--key", "--timeout"):
        assert option in result.output


def test_bench_pipeline_help() -> None:
    result = CliRunner().invoke(bench_pipeline, ["--help"])
    assert result.exit_code == 0, result.output
    for option in ("--count", "--paced-count", "--rate", "--json", "--keep"):
        assert option in result.output


def test_demo_without_key_file_says_start_the_system(data_dir: Path) -> None:
    result = CliRunner().invoke(demo, ["--api", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "make run" in result.output
    assert str(data_dir / "demo-agent.key") in result.output


def test_demo_with_unreachable_api_exits_2(data_dir: Path) -> None:
    (data_dir / "demo-agent.key").write_text("sgk_test\n")
    result = CliRunner().invoke(demo, ["--api", "http://127.0.0.1:9", "--timeout", "5"])
    assert result.exit_code == 2
    assert "unreachable" in result.output
    assert "http://127.0.0.1:9" in result.output


def test_bench_keep_must_be_empty(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    result = CliRunner().invoke(bench_pipeline, ["--keep", str(tmp_path)])
    assert result.exit_code == 2
    assert "not empty" in result.output


def test_fixture_orders_load_with_expectations() -> None:
    orders = load_fixture_orders()
    assert len(orders) == 11
    by_name = {o.name: o for o in orders}
    assert by_name["good"].matches(
        {
            "status": "decided",
            "outcome": "approved",
            "ship_mode": "activate_on_handover",
            "reasons": [],
        }
    )
    assert not by_name["four_cards"].matches(
        {
            "status": "decided",
            "outcome": "store_visit_required",
            "ship_mode": None,
            "reasons": ["policy.card_limit"],
        }
    )
    assert not by_name["good"].matches({"status": "verifying"})


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0, 1.0), (50, 2.5), (100, 4.0), (95, 3.85), (25, 1.75)],
)
def test_percentile_interpolates_like_numpy(q: float, expected: float) -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], q) == pytest.approx(expected)


def test_percentile_edges() -> None:
    assert percentile([7.0], 95) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_per_minute_and_ratio() -> None:
    assert per_minute(90, 60.0) == pytest.approx(90.0)
    assert per_minute(30, 20.0) == pytest.approx(90.0)
    assert math.isnan(per_minute(5, 0.0))
    assert ratio(150.0, 100.0) == pytest.approx(1.5)
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 2.0))


def test_parse_time_treats_naive_as_utc() -> None:
    assert parse_time("2026-11-29T10:00:00") == parse_time("2026-11-29T10:00:00+00:00")
    assert parse_time("2026-11-29T10:00:01.5Z") - parse_time("2026-11-29T10:00:00") == 1.5
