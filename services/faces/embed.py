"""Embed a folder of face images with the run-time pipeline (vision.face.largest_face),
in worker processes, with an .npz cache so calibration and benchmark re-runs are fast."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

CACHE_DIR = Path(__file__).resolve().parents[2] / "var" / "faces"
# Bump when vision/face.py changes how faces are found or encoded.
PIPELINE_VERSION = "face-v1"


def _init() -> None:
    cv2.setNumThreads(1)


def as_card_portrait(img: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Roughly what an ID-card portrait looks like after print, phone capture and
    rectification: fewer pixels (face ~80 px), washed-out colour, blur, JPEG 60."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w * 3 // 4), max(1, h * 3 // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 0.9)
    grey = cv2.cvtColor(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    washed = cv2.addWeighted(small, 0.6, grey, 0.4, 0.0)
    washed = cv2.convertScaleAbs(washed, alpha=0.8, beta=40)
    ok, buf = cv2.imencode(".jpg", washed, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if out is None:
        raise RuntimeError("JPEG round trip failed")
    return np.asarray(cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.uint8)


def _embed_one(job: tuple[str, bool]) -> tuple[npt.NDArray[np.float64], int, float]:
    """(embedding or NaNs, faces found, CPU seconds) for one image file."""
    from vision.errors import VisionError
    from vision.face import find_faces
    from vision.io import load_image

    path, degrade = job
    t0 = time.process_time()
    try:
        img = load_image(Path(path)).pixels
    except VisionError:
        return np.full(128, np.nan), -1, 0.0
    if degrade:
        img = as_card_portrait(img)
    boxes_faces = find_faces(img, max_faces=1)
    cpu = time.process_time() - t0
    if not boxes_faces:
        return np.full(128, np.nan), 0, cpu
    return boxes_faces[0].encoding, 1, cpu


def embed_paths(
    paths: Sequence[Path],
    *,
    processes: int = 2,
    tag: str = "set",
    verbose: bool = True,
    degrade: bool = False,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Embeddings ``(n, 128)`` (NaN rows where no face) and found flags for ``paths``;
    ``degrade`` first turns each image into a simulated card portrait."""
    salt = PIPELINE_VERSION + ("+portrait" if degrade else "")
    key = hashlib.sha256(("\n".join(str(p) for p in paths) + salt).encode()).hexdigest()[:16]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache = CACHE_DIR / f"{tag}-{key}.npz"
    if cache.exists():
        with np.load(cache) as z:
            return np.asarray(z["emb"], dtype=np.float64), np.asarray(z["found"], dtype=np.int64)
    emb = np.full((len(paths), 128), np.nan)
    found = np.zeros(len(paths), dtype=np.int64)
    t0 = time.monotonic()
    with mp.get_context("spawn").Pool(processes, initializer=_init) as pool:
        for i, (e, f, _cpu) in enumerate(
            pool.imap(_embed_one, [(str(p), degrade) for p in paths], 8)
        ):
            emb[i], found[i] = e, f
            if verbose and (i + 1) % 250 == 0:
                sys.stderr.write(
                    f"  embedded {i + 1}/{len(paths)} ({time.monotonic() - t0:.0f}s)\n"
                )
    np.savez_compressed(cache, emb=emb, found=found, paths=np.array([str(p) for p in paths]))
    return emb, found
