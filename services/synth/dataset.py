"""Write a labelled data set of synthetic card captures: JPEGs plus ground-truth JSON.

Card ``i``'s identity, face photo and capture kinds depend only on ``(seed, i)``, and each
capture on ``(seed, i, kind, side)``, so adding cards or kinds never changes the others.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from services.synth.capture import EXPECTED_WARNINGS, Capture, CaptureKind, capture, encode_jpeg
from services.synth.card import Image8, render_back, render_front
from services.synth.identity import REFERENCE_DATE, SyntheticIdentity, generate_identity
from services.synth.portrait import (
    PortraitSource,
    default_faces_dir,
    id_photo,
    portrait_pool,
)
from vision.layout import CANONICAL_HEIGHT, CANONICAL_WIDTH, PORTRAIT_PHOTO

MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True, slots=True)
class CardSpec:
    """What card ``index`` of a data set is made of."""

    index: int
    identity: SyntheticIdentity
    portrait: PortraitSource
    kinds: tuple[CaptureKind, ...]


@dataclass(frozen=True, slots=True)
class _Job:
    spec: CardSpec
    seed: int
    out_dir: Path
    faces_dir: Path
    max_side: int | None
    max_jpeg_quality: int | None


def _rng(seed: int, *parts: object) -> random.Random:
    # String seeds are hashed with SHA-512 by random.Random: stable across runs and hosts.
    return random.Random(":".join(["simgate-synth", str(seed), *map(str, parts)]))


def kinds_for_card(
    seed: int, index: int, kinds: Sequence[CaptureKind], per_card: int | None
) -> tuple[CaptureKind, ...]:
    """All ``kinds``, or ``per_card`` of them rotating through a seeded order.

    Consecutive cards take consecutive slices of one shuffled list, so
    ``ceil(len(kinds) / per_card)`` cards cover every kind.
    """
    if per_card is None or per_card >= len(kinds):
        return tuple(kinds)
    order = list(kinds)
    _rng(seed, "kind-order").shuffle(order)
    chosen = {order[(index * per_card + j) % len(order)] for j in range(per_card)}
    return tuple(kind for kind in kinds if kind in chosen)


def card_spec(
    seed: int,
    index: int,
    pool: Sequence[PortraitSource],
    kinds: Sequence[CaptureKind],
    per_card: int | None = None,
) -> CardSpec:
    """The identity, face and kinds of card ``index`` (a pure function of its inputs)."""
    identity = generate_identity(_rng(seed, index, "identity"))
    # A seeded permutation of the pool, walked in order: faces repeat only after all are used.
    order = list(pool)
    _rng(seed, "faces").shuffle(order)
    return CardSpec(
        index, identity, order[index % len(order)], kinds_for_card(seed, index, kinds, per_card)
    )


def render_card(spec: CardSpec, seed: int, faces_dir: Path) -> tuple[Image8, Image8]:
    """Both canonical sides (BGR) of the card ``spec`` describes."""
    x0, y0, x1, y1 = PORTRAIT_PHOTO.to_pixels(CANONICAL_WIDTH, CANONICAL_HEIGHT)
    relative = spec.portrait.relative_path.split("/", 1)[1]  # drop the "faces/" prefix
    photo = id_photo(faces_dir / relative, x1 - x0, y1 - y0)
    front = render_front(spec.identity, photo, _rng(seed, spec.index, "front"))
    back = render_back(spec.identity, _rng(seed, spec.index, "back"))
    return front, back


def _save(
    path: Path, shot: Capture, max_side: int | None, max_quality: int | None
) -> dict[str, Any]:
    """Write ``shot`` as JPEG (downscaled if asked); returns its path, quad and size."""
    image = shot.image
    quad = np.array(shot.quad, np.float64)
    height, width = image.shape[:2]
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (round(width * scale), round(height * scale))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
        quad = quad * np.array([size[0] / width, size[1] / height])
    quality = shot.jpeg_quality if max_quality is None else min(shot.jpeg_quality, max_quality)
    if image is shot.image and quality == shot.jpeg_quality and shot.jpeg:
        path.write_bytes(shot.jpeg)  # already encoded this way: do not compress twice
    else:
        path.write_bytes(encode_jpeg(image, quality))
    return {
        "path": path.name,
        "quad": [[round(float(x), 2), round(float(y), 2)] for x, y in quad],
        "size": [int(image.shape[1]), int(image.shape[0])],
        "jpeg_quality": quality,
    }


def _ground_truth(
    job: _Job, kind: CaptureKind, shots: dict[str, Capture], files: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    spec = job.spec
    identity = spec.identity
    return {
        "id": f"card{spec.index:04d}_{kind}",
        "seed": job.seed,
        "card_index": spec.index,
        "synthetic": True,
        "identity": identity.to_json(),
        "kind": str(kind),
        "params": {side: shot.params for side, shot in shots.items()},
        **files,
        "expected_warnings": list(EXPECTED_WARNINGS[kind]),
        "reference_date": REFERENCE_DATE.isoformat(),
        "expired_at_reference": identity.is_expired(REFERENCE_DATE),
        "portrait_source": spec.portrait.relative_path,
        "face_identity": spec.portrait.face_identity,
    }


def _make_card(job: _Job) -> list[tuple[Path, str]]:
    """Render one card and all its captures; returns (json path, manifest line) pairs."""
    cv2.setNumThreads(1)  # the pool already uses every core
    spec = job.spec
    canonical = dict(
        zip(("front", "back"), render_card(spec, job.seed, job.faces_dir), strict=True)
    )
    written: list[tuple[Path, str]] = []
    for kind in spec.kinds:
        stem = f"card{spec.index:04d}_{kind}"
        shots: dict[str, Capture] = {}
        files: dict[str, dict[str, Any]] = {}
        for side, image in canonical.items():
            shots[side] = capture(image, kind, _rng(job.seed, spec.index, kind, side))
            path = job.out_dir / f"{stem}_{side}.jpg"
            files[side] = _save(path, shots[side], job.max_side, job.max_jpeg_quality)
        truth = _ground_truth(job, kind, shots, files)
        json_path = job.out_dir / f"{stem}.json"
        json_path.write_text(
            json.dumps(truth, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        written.append((json_path, json.dumps(truth, ensure_ascii=False, separators=(",", ":"))))
    return written


def generate_dataset(
    out_dir: Path,
    *,
    count: int,
    seed: int,
    kinds: Sequence[CaptureKind] | None = None,
    faces_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    kinds_per_card: int | None = None,
    mit_faces_only: bool = False,
    max_side: int | None = None,
    max_jpeg_quality: int | None = None,
    workers: int | None = None,
) -> list[Path]:
    """Render ``count`` cards and photograph each in every kind; returns the JSON paths.

    For card ``i`` and kind ``k`` it writes ``card{i:04d}_{k}_front.jpg``,
    ``..._back.jpg`` and the ground truth ``card{i:04d}_{k}.json``, plus
    ``manifest.jsonl`` (one line per JSON, in card then kind order).
    ``kinds_per_card`` gives each card only that many kinds, rotating so that few cards
    cover them all; ``max_side``/``max_jpeg_quality`` shrink the files (committed samples).
    ``progress(done, total)`` is called after each card.
    """
    faces = faces_dir or default_faces_dir()
    pool = portrait_pool(faces, mit_only=mit_faces_only)
    chosen = tuple(kinds) if kinds is not None else tuple(CaptureKind)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        _Job(
            card_spec(seed, i, pool, chosen, kinds_per_card),
            seed,
            out_dir,
            faces,
            max_side,
            max_jpeg_quality,
        )
        for i in range(count)
    ]
    processes = min(workers if workers is not None else min(2, os.cpu_count() or 1), len(jobs))
    results: list[list[tuple[Path, str]]] = []
    if processes <= 1:
        for done, job in enumerate(jobs, start=1):
            results.append(_make_card(job))
            if progress is not None:
                progress(done, len(jobs))
    else:
        # spawn, not fork: forking a process that has started OpenCV/dlib threads can hang.
        with multiprocessing.get_context("spawn").Pool(processes) as pool_:
            for done, result in enumerate(pool_.imap(_make_card, jobs), start=1):
                results.append(result)
                if progress is not None:
                    progress(done, len(jobs))
    lines = [line for result in results for _, line in result]
    (out_dir / MANIFEST_NAME).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return [path for result in results for path, _ in result]
