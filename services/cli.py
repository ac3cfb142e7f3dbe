"""The ``simgate`` command line. A stable contract: JSON on stdout, exit 0 when the
input was processed, 2 when it was unreadable (with a JSON error on stdout)."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

EXIT_UNREADABLE = 2


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _parse_today(value: str | None) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from exc


@click.group()
@click.version_option(package_name="simgate")
def main() -> None:
    """simgate: identity verification for SIM cards sold online."""


def _read_one(paths: list[str], today: date) -> dict[str, Any]:
    """Read one card from one or two image files; raises VisionError when unreadable."""
    from services.reports import reading_to_dict
    from vision.idcard import read_id_card
    from vision.io import load_image

    images = [load_image(Path(p)).pixels for p in paths]
    reading = read_id_card(images, today=today)
    return reading_to_dict(reading, paths)


def _error(code: str, detail: str, paths: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"error": code, "detail": detail}
    if paths is not None:
        out = {"inputs": paths, **out}
    return out


@main.command("read-id")
@click.argument("images", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON result.")
@click.option("--today", "today_opt", metavar="YYYY-MM-DD", help="Date for the expiry check.")
@click.option(
    "--batch",
    "batch",
    type=click.Path(dir_okay=False),
    help="File with one card per line: one or two tab-separated image paths.",
)
def read_id(
    images: tuple[str, ...], as_json: bool, today_opt: str | None, batch: str | None
) -> None:
    """Read a Chinese resident ID card from IMAGE [IMAGE] (front and/or back, any order)."""
    from vision.errors import VisionError

    today = _parse_today(today_opt)
    if batch is not None:
        if images:
            raise click.UsageError("give either IMAGE arguments or --batch, not both")
        _read_batch(Path(batch), today)
        return
    if not 1 <= len(images) <= 2:
        raise click.UsageError("give one or two images (front and/or back)")
    paths = list(images)
    try:
        result = _read_one(paths, today)
    except (VisionError, OSError) as exc:
        code = exc.code if isinstance(exc, VisionError) else "image.unreadable"
        _emit(_error(code, str(exc), paths))
        sys.exit(EXIT_UNREADABLE)
    if as_json:
        _emit(result)
    else:
        _print_human(result)


def _read_batch(list_path: Path, today: date) -> None:
    from vision.errors import VisionError
    from vision.ocr import get_engine

    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        _emit(_error("batch.unreadable", str(exc)))
        sys.exit(EXIT_UNREADABLE)
    get_engine().warm_up()  # models load once for the whole batch
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        paths = [p for p in line.split("\t") if p.strip()]
        if len(paths) > 2:
            _emit(_error("batch.bad_line", "expected one or two tab-separated paths", paths))
            continue
        try:
            _emit(_read_one(paths, today))
        except (VisionError, OSError) as exc:
            code = exc.code if isinstance(exc, VisionError) else "image.unreadable"
            _emit(_error(code, str(exc), paths))


def _print_human(result: dict[str, Any]) -> None:
    for key, value in result["fields"].items():
        click.echo(f"{key:>12}: {value}")
    ok = [k for k, v in result["checks"].items() if v]
    bad = [k for k, v in result["checks"].items() if not v]
    click.echo(f"{'checks':>12}: {len(ok)} passed" + (f", failed: {', '.join(bad)}" if bad else ""))
    if result["warnings"]:
        click.echo(f"{'warnings':>12}: {', '.join(result['warnings'])}")
    if result["errors"]:
        click.echo(f"{'errors':>12}: {', '.join(result['errors'])}")


@main.group()
def bench() -> None:
    """Benchmarks that print measured numbers."""


@bench.command("idcards")
@click.option(
    "--count", default=22, show_default=True, help="Cards; each is captured in every kind."
)
@click.option("--seed", default=2026, show_default=True, help="Generator seed (not the sample's).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Keep the set here.")
@click.option("--jobs", default=2, show_default=True, help="Worker processes, one thread each.")
@click.option(
    "--baseline-cards",
    default=3,
    show_default=True,
    help="Cards (x every kind) also read by the naive baseline (slow: ~2.5 s per photo).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def bench_idcards(
    count: int, seed: int, out: Path | None, jobs: int, baseline_cards: int, json_out: Path | None
) -> None:
    """ID-card reading: accuracy per degradation, fraud signals, cost, naive baseline."""
    from services.bench.idcards import run

    run(
        count=count,
        seed=seed,
        out=out,
        jobs=jobs,
        baseline_cards=baseline_cards,
        json_out=json_out,
    )


@bench.command("barcodes")
@click.option("--count", default=40, show_default=True, help="Frames per blur level.")
@click.option("--seed", default=5, show_default=True)
def bench_barcodes(count: int, seed: int) -> None:
    """QR decoding: zxing-cpp (default) against pyzbar on phone-like frames."""
    from services.bench.barcodes import run

    run(count, seed)


@main.group()
def fixtures() -> None:
    """Generate synthetic test data (synthetic identities, real faces)."""


@fixtures.command(
    "idcards",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def fixtures_idcards(args: tuple[str, ...]) -> None:
    """Synthetic ID cards in every capture kind, with ground truth (--help for options).

    The committed sample is ``--out fixtures/idcards --count 8 --seed 7 --sample``.
    """
    from services.synth.__main__ import main as synth_main

    sys.exit(synth_main(list(args)))


def _register_face_commands() -> None:
    """Face commands live in their own modules (heavy imports stay lazy inside them)."""
    from services.faces_cli import bench_faces, match_face
    from services.selfie_cli import check_selfie

    main.add_command(check_selfie)
    from services.badge_cli import badge
    from services.bench.face_index import bench_face_index
    from services.bench.liveness import bench_liveness
    from services.bench.pipeline import bench_pipeline
    from services.demo import demo
    from services.inspect_cli import inspect_command
    from services.service_cli import COMMANDS

    main.add_command(demo)
    main.add_command(badge)
    main.add_command(inspect_command)
    bench.add_command(bench_pipeline)
    bench.add_command(bench_face_index)
    bench.add_command(bench_liveness)

    for command in COMMANDS:
        main.add_command(command)
    main.add_command(match_face)
    bench.add_command(bench_faces)


_register_face_commands()

if __name__ == "__main__":
    main()
