"""Synthetic handheld selfies: a real person's photo holding a synthetic ID card.

Each case pairs a *live* photo of one person with a card rendered from another photo
(of the same person for an honest card), so live face and printed portrait differ as
they do in reality. The "scanned" front (``*_idfront.jpg``) is the clean render of the
card the applicant submitted; the selfie shows what they held up to the camera.

Cases and the reasons :func:`vision.selfie.check_selfie` should give:

- ``genuine``: the applicant holds their own card; no reason.
- ``other_card``: the applicant holds another person's card: ``selfie.card_mismatch``.
- ``no_card``: nothing held: ``selfie.card_missing``.
- ``portrait_swapped``: the applicant's card text with someone else's portrait printed
  on it: ``selfie.card_mismatch``.
- ``two_faces``: a second person of comparable size in the frame: ``face.multiple``.
- ``impostor``: someone else's card was scanned and is held up by the applicant (a
  borrowed or stolen card): ``face.mismatch``.

Everything depends only on ``(seed, index, case)``: re-running reproduces the files.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from services.synth.capture import _composite, card_alpha, encode_jpeg, place_quad
from services.synth.card import Image8, render_front
from services.synth.identity import SyntheticIdentity, generate_identity
from services.synth.portrait import (
    MIT_PHOTOS,
    _face_box,
    default_faces_dir,
    id_photo,
    load_rgb,
)
from vision.layout import CANONICAL_HEIGHT, CANONICAL_WIDTH, PORTRAIT_PHOTO

CASES: tuple[str, ...] = (
    "genuine",
    "other_card",
    "no_card",
    "portrait_swapped",
    "two_faces",
    "impostor",
)
EXPECTED_REASONS: dict[str, tuple[str, ...]] = {
    "genuine": (),
    "other_card": ("selfie.card_mismatch",),
    "no_card": ("selfie.card_missing",),
    "portrait_swapped": ("selfie.card_mismatch",),
    "two_faces": ("face.multiple",),
    "impostor": ("face.mismatch",),
}
FRAME = (960, 1280)  # width, height: a portrait-orientation phone selfie
FloatImage = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Person:
    """An identity of the shared face set with the photos that may be used."""

    name: str
    photos: tuple[str, ...]  # paths relative to the faces folder, e.g. "people/X/1.jpg"


def people(faces_dir: Path, *, mit_only: bool = False) -> list[Person]:
    """Identities with at least two usable photos (live photo and card portrait differ)."""
    by_person: dict[str, list[str]] = defaultdict(list)
    if mit_only:
        # Obama/4.jpg (320x240) is excluded from MIT_PHOTOS already.
        for rel in MIT_PHOTOS:
            if (faces_dir / rel).is_file():
                by_person[rel.split("/")[1]].append(rel)
    else:
        for path in sorted((faces_dir / "people").glob("*/*")):
            if path.suffix.lower() in {".jpg", ".jpeg", ".png"} and path.name != "4.jpg":
                by_person[path.parent.name].append(f"people/{path.parent.name}/{path.name}")
    # Kit_Harington/1.jpg is a wide shot with a tiny face: useless as a live selfie.
    return [
        Person(name, tuple(p for p in photos if p != "people/Kit_Harington/1.jpg"))
        for name, photos in sorted(by_person.items())
        if len(photos) >= 2
    ]


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(["simgate-selfie", str(seed), *map(str, parts)]))


def render_card_front(
    identity: SyntheticIdentity, faces_dir: Path, photo: str, rng: random.Random
) -> Image8:
    """The canonical front of ``identity`` with ``photo`` as its portrait."""
    x0, y0, x1, y1 = PORTRAIT_PHOTO.to_pixels(CANONICAL_WIDTH, CANONICAL_HEIGHT)
    return render_front(identity, id_photo(faces_dir / photo, x1 - x0, y1 - y0), rng)


def _person_layer(
    rgb: Image8, face_width: float, centre: tuple[float, float]
) -> tuple[Image8, FloatImage, tuple[float, float, float, float]]:
    """The photo scaled so its face is ``face_width`` px wide, centred at ``centre``.

    Returns the BGR frame-sized layer, where the photo has pixels (1) and the face box
    (top, right, bottom, left) in frame pixels.
    """
    fw, fh = FRAME
    top, right, bottom, left = _face_box(rgb)
    s = face_width / max(1.0, right - left)
    fcx, fcy = (left + right) / 2, (top + bottom) / 2
    matrix = np.array([[s, 0, centre[0] - fcx * s], [0, s, centre[1] - fcy * s]], np.float64)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    layer = np.asarray(
        cv2.warpAffine(
            bgr, matrix, (fw, fh), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
        ),
        np.uint8,
    )
    valid = np.ones(rgb.shape[:2], np.float32)
    cover = np.asarray(
        cv2.warpAffine(valid, matrix, (fw, fh), flags=cv2.INTER_LINEAR, borderValue=0.0),
        np.float32,
    )
    box = (
        centre[1] - (fcy - top) * s,
        centre[0] + (right - fcx) * s,
        centre[1] + (bottom - fcy) * s,
        centre[0] - (fcx - left) * s,
    )
    return layer, cover, box


def _head_mask(box: tuple[float, float, float, float]) -> FloatImage:
    """A soft head-and-shoulders mask around a face box (for pasting a second person)."""
    fw, fh = FRAME
    top, right, bottom, left = box
    w, h = right - left, bottom - top
    cx, cy = (left + right) / 2, (top + bottom) / 2
    mask = np.zeros((fh, fw), np.float32)
    cv2.ellipse(
        mask, (round(cx), round(cy - 0.1 * h)), (round(0.8 * w), round(1.0 * h)), 0, 0, 360, 1.0, -1
    )
    cv2.ellipse(
        mask, (round(cx), round(cy + 2.1 * h)), (round(1.6 * w), round(1.2 * h)), 0, 0, 360, 1.0, -1
    )
    return np.asarray(cv2.GaussianBlur(mask, (0, 0), sigmaX=0.08 * w), np.float32)


def _blend(base: FloatImage, layer: Image8, mask: FloatImage) -> None:
    m = mask[..., None]
    base[:] = base * (1 - m) + layer.astype(np.float32) * m


def _hand_quad(
    rng: random.Random, face_box: tuple[float, float, float, float]
) -> npt.NDArray[np.float64]:
    """Where the held card lands: in the lower part of the frame, below the face."""
    fw, fh = FRAME
    bottom = face_box[2]
    y0 = min(bottom + 0.04 * fh, 0.55 * fh)
    region = (fw, round(fh * 0.985 - y0))
    card_w = rng.uniform(0.38, 0.55) * fw
    card_area = card_w * card_w / 1.585
    area_frac = card_area / (region[0] * region[1])
    quad, _ = place_quad(
        rng,
        region,
        (CANONICAL_WIDTH, CANONICAL_HEIGHT),
        area=(area_frac * 0.95, area_frac * 1.05),
        max_tilt_deg=25.0,
        max_roll_deg=18.0,
        margin=0.03,
    )
    return np.asarray(quad + np.array([0.0, y0]), np.float64)


def _palm(frame: FloatImage, quad: npt.NDArray[np.float64], rng: random.Random) -> None:
    """A skin-toned hand under the card's lower edge (drawn before the card)."""
    fw, fh = FRAME
    bl, br = quad[3], quad[2]
    t = rng.uniform(0.25, 0.75)
    width = float(np.linalg.norm(br - bl)) * 0.22
    # Centred a little inside the card: the card covers the palm, the rest shows below.
    inward = quad.mean(axis=0) - (bl + br) / 2
    cx, cy = bl + (br - bl) * t + inward * 0.5
    mask = np.zeros((fh, fw), np.float32)
    cv2.ellipse(
        mask,
        (round(cx), round(cy)),
        (round(width), round(width * 1.3)),
        rng.uniform(-20, 20),
        0,
        360,
        1.0,
        -1,
    )
    mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), sigmaX=4), np.float32)
    tone = np.array(
        [rng.uniform(120, 170), rng.uniform(150, 190), rng.uniform(190, 230)], np.float32
    )
    m = mask[..., None]
    frame[:] = frame * (1 - m) + tone * m


def compose_selfie(
    rng: random.Random,
    live_rgb: Image8,
    card: Image8 | None,
    *,
    second_rgb: Image8 | None = None,
) -> tuple[Image8, dict[str, Any]]:
    """Compose one selfie; returns the BGR image and its geometry (face boxes, quad)."""
    fw, fh = FRAME
    if second_rgb is None:
        face_w = rng.uniform(0.22, 0.30) * fw
        centre = (rng.uniform(0.40, 0.60) * fw, rng.uniform(0.22, 0.28) * fh)
    else:
        face_w = rng.uniform(0.18, 0.22) * fw
        centre = (rng.uniform(0.26, 0.32) * fw, rng.uniform(0.22, 0.27) * fh)
    layer, cover, box = _person_layer(live_rgb, face_w, centre)
    # Where the photo does not reach, a blurred copy of itself stands in for the room.
    backdrop = cv2.GaussianBlur(layer, (0, 0), sigmaX=25).astype(np.float32) * 0.9
    frame = np.asarray(backdrop, np.float32)
    _blend(frame, layer, np.asarray(cv2.GaussianBlur(cover, (0, 0), sigmaX=6), np.float32))
    faces = [box]
    if second_rgb is not None:
        second_w = face_w * rng.uniform(0.75, 0.95)
        second_c = (rng.uniform(0.68, 0.74) * fw, centre[1] + rng.uniform(-0.03, 0.03) * fh)
        layer2, cover2, box2 = _person_layer(second_rgb, second_w, second_c)
        _blend(frame, layer2, _head_mask(box2) * cover2)
        faces.append(box2)
    geometry: dict[str, Any] = {
        "live_face_box": [round(v, 1) for v in box],
        "face_boxes": [[round(v, 1) for v in b] for b in faces],
        "held_card_quad": None,
    }
    if card is not None:
        lowest = max(b[2] for b in faces)
        quad = _hand_quad(rng, (box[0], box[1], lowest, box[3]))
        _palm(frame, quad, rng)
        ch, cw = card.shape[:2]
        _composite(frame, card, card_alpha(cw, ch), quad)
        geometry["held_card_quad"] = [[round(float(x), 1), round(float(y), 1)] for x, y in quad]
    # Phone selfie: slight softness, sensor noise, JPEG.
    sigma = rng.uniform(0.5, 1.1)
    out = cv2.GaussianBlur(np.clip(frame, 0, 255).astype(np.uint8), (0, 0), sigmaX=sigma)
    noise = np.random.default_rng(rng.getrandbits(64)).normal(0, rng.uniform(1.5, 3.0), out.shape)
    image = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    geometry["blur_sigma"] = round(sigma, 3)
    return image, geometry


def _pick(rng: random.Random, pool: Sequence[Person], exclude: set[str]) -> Person:
    return rng.choice([p for p in pool if p.name not in exclude])


def make_case(
    seed: int, index: int, case: str, pool: Sequence[Person], faces_dir: Path
) -> tuple[Image8, Image8, dict[str, Any]]:
    """One selfie, the scanned front and the ground truth for ``case``."""
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}")
    rng = _rng(seed, index, case)
    me = pool[(index + CASES.index(case)) % len(pool)]
    live_photo, my_portrait = rng.sample(list(me.photos), 2)
    my_identity = generate_identity(_rng(seed, index, case, "identity"))
    other = _pick(rng, pool, {me.name})
    other_photo = rng.choice(other.photos)
    other_identity = generate_identity(_rng(seed, index, case, "other-identity"))
    front_rng = _rng(seed, index, case, "front")
    scanned_identity, scanned_person, scanned_photo = my_identity, me.name, my_portrait
    if case == "impostor":
        scanned_identity, scanned_person, scanned_photo = other_identity, other.name, other_photo
    scanned = render_card_front(scanned_identity, faces_dir, scanned_photo, front_rng)
    held: Image8 | None = scanned
    held_identity, held_person, held_photo = scanned_identity, scanned_person, scanned_photo
    if case == "other_card":
        held_identity, held_person, held_photo = other_identity, other.name, other_photo
        held = render_card_front(
            other_identity, faces_dir, other_photo, _rng(seed, index, case, "held")
        )
    elif case == "portrait_swapped":
        held_person, held_photo = other.name, other_photo
        held = render_card_front(
            my_identity, faces_dir, other_photo, _rng(seed, index, case, "held")
        )
    elif case == "no_card":
        held = None
    second = load_rgb(faces_dir / other_photo) if case == "two_faces" else None
    image, geometry = compose_selfie(rng, load_rgb(faces_dir / live_photo), held, second_rgb=second)
    truth: dict[str, Any] = {
        "case": case,
        "seed": seed,
        "index": index,
        "synthetic": True,
        "live_identity": me.name,
        "live_photo": f"faces/{live_photo}",
        "scanned_identity": scanned_identity.to_json(),
        "scanned_portrait_identity": scanned_person,
        "scanned_portrait_photo": f"faces/{scanned_photo}",
        "held_identity": held_identity.to_json() if held is not None else None,
        "portrait_identity": held_person if held is not None else None,
        "portrait_photo": f"faces/{held_photo}" if held is not None else None,
        "second_face_identity": other.name if case == "two_faces" else None,
        "second_face_photo": f"faces/{other_photo}" if case == "two_faces" else None,
        **geometry,
        "expected_reasons": list(EXPECTED_REASONS[case]),
    }
    return image, scanned, truth


def generate_selfies(
    out_dir: Path,
    *,
    per_case: int,
    seed: int,
    faces_dir: Path | None = None,
    mit_only: bool = False,
    jpeg_quality: int = 85,
    front_jpeg_quality: int | None = None,
    cases: Sequence[str] = CASES,
) -> list[Path]:
    """Write ``selfie{i:03d}_{case}.jpg``, ``..._idfront.jpg`` and ``....json`` files."""
    front_quality = jpeg_quality if front_jpeg_quality is None else front_jpeg_quality
    faces = faces_dir or default_faces_dir()
    pool = people(faces, mit_only=mit_only)
    if len(pool) < 2:
        raise FileNotFoundError(f"need two people with two photos each under {faces}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(per_case):
        for case in cases:
            image, scanned, truth = make_case(seed, index, case, pool, faces)
            stem = f"selfie{index:03d}_{case}"
            (out_dir / f"{stem}.jpg").write_bytes(encode_jpeg(image, jpeg_quality))
            (out_dir / f"{stem}_idfront.jpg").write_bytes(encode_jpeg(scanned, front_quality))
            truth["selfie"] = f"{stem}.jpg"
            truth["id_front"] = f"{stem}_idfront.jpg"
            truth["jpeg_quality"] = {"selfie": jpeg_quality, "id_front": front_quality}
            path = out_dir / f"{stem}.json"
            path.write_text(json.dumps(truth, ensure_ascii=False, indent=2) + "\n", "utf-8")
            written.append(path)
    return written


def evaluate(directory: Path) -> dict[str, Any]:
    """Run the selfie check over a generated folder: accuracy per case and timings.

    A case counts as correct when the check's reasons equal the expected ones exactly
    (``genuine`` must pass with no reason).
    """
    from PIL import ImageFile

    from services.selfie_cli import check_files

    # services.synth.portrait imports face_recognition, which turns this PIL global on;
    # vision.io refuses to decode uploads with it set.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    per_case: dict[str, dict[str, Any]] = {}
    timings: list[float] = []
    failures: list[dict[str, Any]] = []
    for path in sorted(directory.glob("selfie*.json")):
        truth = json.loads(path.read_text("utf-8"))
        started = time.process_time()
        result = check_files(directory / truth["selfie"], directory / truth["id_front"])
        timings.append((time.process_time() - started) * 1000)
        expected = sorted(truth["expected_reasons"])
        got = sorted(result.get("reasons", [result.get("error", "?")]))
        stats = per_case.setdefault(truth["case"], {"n": 0, "correct": 0})
        stats["n"] += 1
        if got == expected:
            stats["correct"] += 1
        else:
            failures.append({"file": truth["selfie"], "expected": expected, "got": got})
    for stats in per_case.values():
        stats["accuracy"] = round(stats["correct"] / stats["n"], 3) if stats["n"] else math.nan
    total = sum(s["n"] for s in per_case.values())
    correct = sum(s["correct"] for s in per_case.values())
    ordered = sorted(timings)
    return {
        "cases": per_case,
        "total": total,
        "accuracy": round(correct / total, 3) if total else math.nan,
        "cpu_ms_median": round(ordered[len(ordered) // 2], 1) if ordered else math.nan,
        "cpu_ms_max": round(ordered[-1], 1) if ordered else math.nan,
        "failures": failures,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.synth.selfie --out DIR`` (generate) or ``--evaluate DIR``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m services.synth.selfie")
    parser.add_argument("--out", type=Path, help="write a data set here")
    parser.add_argument("--per-case", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mit-only", action="store_true", help="MIT-licensed photos only")
    parser.add_argument("--jpeg-quality", type=int, default=85)
    parser.add_argument("--front-jpeg-quality", type=int, default=None)
    parser.add_argument("--evaluate", type=Path, help="run the check over a data set")
    args = parser.parse_args(argv)
    if args.out is None and args.evaluate is None:
        parser.error("give --out and/or --evaluate")
    if args.out is not None:
        paths = generate_selfies(
            args.out,
            per_case=args.per_case,
            seed=args.seed,
            mit_only=args.mit_only,
            jpeg_quality=args.jpeg_quality,
            front_jpeg_quality=args.front_jpeg_quality,
        )
        sys.stdout.write(f"wrote {len(paths)} selfies to {args.out}\n")
    if args.evaluate is not None:
        sys.stdout.write(json.dumps(evaluate(args.evaluate), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
