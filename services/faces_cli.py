"""``simgate match-face`` and ``simgate bench faces`` (registered in services/cli.py).

Same contract as the rest of the CLI: JSON on stdout, exit 0 when the input was
processed (a photo without a face is processed: verdict ``null``, error
``face.not_found``), 2 when an image was unreadable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

EXIT_UNREADABLE = 2


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _error_code(exc: BaseException) -> str:
    from vision.errors import VisionError

    return exc.code if isinstance(exc, VisionError) else "image.unreadable"


def match_paths(path_a: str, path_b: str, use: str) -> dict[str, Any]:
    """Compare the largest faces of two image files; raises VisionError/OSError if unreadable."""
    from vision.face import compare, detect_faces, encode_face
    from vision.io import load_image

    counts: list[int] = []
    largest = []
    for p in (path_a, path_b):
        img = load_image(Path(p)).pixels
        boxes = detect_faces(img)
        counts.append(len(boxes))
        # Every face is counted, but only the largest is encoded (the costly step).
        largest.append(encode_face(img, boxes[0]) if boxes else None)
    out: dict[str, Any] = {"inputs": [path_a, path_b], "faces_a": counts[0], "faces_b": counts[1]}
    ea, eb = largest
    if ea is None or eb is None:
        missing = [name for name, e in (("a", ea), ("b", eb)) if e is None]
        return {
            **out,
            "verdict": None,
            "distance": None,
            "score": None,
            "thresholds": None,
            "error": "face.not_found",
            "detail": f"no face found in image {' and '.join(missing)}",
        }
    m = compare(ea, eb, use=use)
    return {
        **out,
        "verdict": m.verdict,
        "distance": round(m.distance, 6),
        "score": round(m.score, 6),
        "thresholds": {
            "use": use,
            "match": m.thresholds.match,
            "no_match": m.thresholds.no_match,
            "space": m.thresholds.space,
        },
    }


def _check_use(use: str) -> None:
    from vision.face import calibration

    if use not in calibration().uses:
        raise click.BadParameter(f"unknown use {use!r}; known: {sorted(calibration().uses)}")


@click.command("match-face")
@click.argument("images", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON result.")
@click.option(
    "--pairs",
    "pairs",
    type=click.Path(dir_okay=False),
    help="File with one pair per line: two tab-separated image paths; one JSON line each.",
)
@click.option("--use", default="default", show_default=True, help="Threshold set to apply.")
def match_face(images: tuple[str, ...], as_json: bool, pairs: str | None, use: str) -> None:
    """Compare the largest face of IMAGE_A with the largest face of IMAGE_B."""
    from vision.errors import VisionError

    _check_use(use)
    if pairs is not None:
        if images:
            raise click.UsageError("give either IMAGE_A IMAGE_B or --pairs, not both")
        _match_pairs(Path(pairs), use)
        return
    if len(images) != 2:
        raise click.UsageError("give two images: IMAGE_A IMAGE_B")
    try:
        result = match_paths(images[0], images[1], use)
    except (VisionError, OSError) as exc:
        _emit({"inputs": list(images), "error": _error_code(exc), "detail": str(exc)})
        sys.exit(EXIT_UNREADABLE)
    if as_json:
        _emit(result)
    elif result["verdict"] is None:
        click.echo(f"no verdict: {result['detail']}")
    else:
        click.echo(
            f"{result['verdict']} (score {result['score']:.3f}, dlib distance "
            f"{result['distance']:.3f}; faces {result['faces_a']}/{result['faces_b']})"
        )


def _match_pairs(list_path: Path, use: str) -> None:
    from vision.errors import VisionError

    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        _emit({"error": "pairs.unreadable", "detail": str(exc)})
        sys.exit(EXIT_UNREADABLE)
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        paths = [p for p in line.split("\t") if p.strip()]
        if len(paths) != 2:
            _emit({"inputs": paths, "error": "pairs.bad_line", "detail": "expected 2 paths"})
            continue
        try:
            # Models load on the first pair and stay loaded (vision.face caches them).
            _emit(match_paths(paths[0], paths[1], use))
        except (VisionError, OSError) as exc:
            _emit({"inputs": paths, "error": _error_code(exc), "detail": str(exc)})


@click.command("faces")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--repeats", default=10, show_default=True, help="Timing repeats per image size.")
@click.option(
    "--selfies-per-case",
    default=10,
    show_default=True,
    help="Freshly generated handheld selfies per case (0 skips the selfie part).",
)
@click.option("--seed", default=2026, show_default=True, help="Selfie generator seed.")
def bench_faces(data: Path | None, repeats: int, selfies_per_case: int, seed: int) -> None:
    """Face matching (test set, held-out split), CPU cost, and selfie checks per case."""
    import tempfile

    from services.faces.bench import run

    run(data=data, repeats=repeats)
    if selfies_per_case <= 0:
        return
    from services.synth.selfie import evaluate, generate_selfies

    with tempfile.TemporaryDirectory(prefix="simgate-selfies-") as tmp:
        click.echo(
            f"\n== Handheld selfies: {selfies_per_case} per case, generated now (seed {seed}) ==",
        )
        generate_selfies(Path(tmp), per_case=selfies_per_case, seed=seed)
        result = evaluate(Path(tmp))
    click.echo(f"{'case':<18}{'correct':>10}{'accuracy':>10}")
    for case, stats in sorted(result["cases"].items()):
        click.echo(f"{case:<18}{stats['correct']:>5}/{stats['n']:<4}{stats['accuracy']:>10.1%}")
    click.echo(
        f"all cases: {result['accuracy']:.1%} of {result['total']}; CPU per selfie check "
        f"(scanned front read included) median {result['cpu_ms_median']:.0f} ms, "
        f"max {result['cpu_ms_max']:.0f} ms"
    )
    for failure in result["failures"]:
        click.echo(
            f"  miss: {failure['file']}: expected {failure['expected']}, got {failure['got']}"
        )
