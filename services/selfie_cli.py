"""``simgate check-selfie``: the handheld-selfie check on two files, as JSON.

Registered in :mod:`services.cli`. Exit 0 when the images were processed (whatever the
verdict), 2 with ``{"error": code, "detail": ...}`` when one could not be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from services.reports import match_to_dict

EXIT_UNREADABLE = 2


def check_files(selfie_path: Path, id_front_path: Path) -> dict[str, Any]:
    """Run the check on two image files; ``{"error", "detail"}`` when one is unreadable."""
    from vision.errors import VisionError
    from vision.idcard import read_side
    from vision.io import load_image
    from vision.selfie import check_selfie

    try:
        selfie = load_image(selfie_path).pixels
        front = load_image(id_front_path).pixels
    except VisionError as exc:
        return {"error": exc.code, "detail": exc.message}
    except OSError as exc:
        return {"error": "image.unreadable", "detail": str(exc)}
    reading = read_side(front)
    portrait = reading.portrait
    if portrait is None:
        return {"error": "document.side_wrong", "detail": "the ID image shows the emblem side"}
    number_field = reading.fields.get("id_number")
    number = number_field.value if number_field else None
    result = check_selfie(selfie, scanned_portrait=portrait, scanned_id_number=number)
    box = result.live_face_box
    return {
        "inputs": {"selfie": str(selfie_path), "id_front": str(id_front_path)},
        "passed": result.passed,
        "reasons": list(result.reasons),
        "face_match": match_to_dict(result.face_match),
        "card_portrait_match": match_to_dict(result.card_portrait_match),
        "card_number": {
            "verdict": result.card_number.verdict,
            "held": result.card_number.held,
            "expected": result.card_number.expected,
        },
        "faces_found": result.faces_found,
        "live_face_box": (
            None
            if box is None
            else {"top": box.top, "right": box.right, "bottom": box.bottom, "left": box.left}
        ),
        "held_card_quad": (
            None if result.held_card_quad is None else [list(p) for p in result.held_card_quad]
        ),
        "timings_ms": {**reading.timings_ms, **result.timings_ms},
    }


@click.command("check-selfie")
@click.argument("selfie", type=click.Path(dir_okay=False))
@click.option(
    "--id-front",
    "id_front",
    required=True,
    type=click.Path(dir_okay=False),
    help="Photo of the card's portrait side that was scanned.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON result.")
def check_selfie(selfie: str, id_front: str, as_json: bool) -> None:
    """Check that SELFIE shows the person of the scanned card holding that card."""
    result = check_files(Path(selfie), Path(id_front))
    if "error" in result:
        click.echo(json.dumps(result, ensure_ascii=False))
        sys.exit(EXIT_UNREADABLE)
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        verdict = "passed" if result["passed"] else "failed: " + ", ".join(result["reasons"])
        click.echo(f"{selfie}: {verdict}")
