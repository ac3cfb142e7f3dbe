"""Face detection, encoding and comparison (dlib via ``face_recognition``).

Detection runs dlib's HOG detector on a copy downscaled to at most
:data:`DETECT_MAX_SIDE` pixels on the long side (upsample 0, then upsample 1 only if
nothing was found), so a 12-megapixel selfie costs about what a small photo costs. The
CNN detector is never used: it is 20-80x slower on CPU. Each face is then encoded from
a crop of the *input* image around the mapped-back box, so the 150x150 chip dlib aligns
is cut from the best pixels available.

:func:`compare` turns two raw 128-d embeddings into a :class:`FaceMatch`. The raw
euclidean distance is kept as evidence; the verdict comes from a calibrated score and
per-use thresholds read lazily from ``face_calibration.json`` next to this module (made
by ``python -m services.faces.calibrate``; services/faces/CALIBRATION.md has the numbers).
The shipped calibration is adaptive symmetric score normalisation: the pair's distance is
z-scored against each face's 50 closest faces in a fixed cohort of 400 LFW impostors, so
a face from a crowded part of dlib's space (East Asian faces, which raw dlib confuses:
39% of East Asian impostor pairs fall under its usual 0.6) must be much closer to count
as a match; a logistic map turns that into a 0..1 score. Thresholds never depend on a
person's ethnicity, which is unknown at run time; they were chosen so that East Asian
impostor pairs meet the false-accept target too.

Models load on first use, once per process (``face_recognition`` loads them at import).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Embedding = npt.NDArray[np.float64]

DETECT_MAX_SIDE: Final = 640
# Below this the HOG window (80 px) cannot hold a face even after upsampling.
MIN_SIDE: Final = 32
# Crop margin around the detected box, as a fraction of its size: dlib's landmark
# model and the aligned chip (with its padding) reach outside the HOG box.
CROP_MARGIN: Final = 0.5
# A face wider than this in the crop is downscaled first: the chip is 150 px, so more
# pixels add CPU (colour conversion, pyramid) but no information.
ENCODE_MAX_FACE: Final = 300
EMBEDDING_DIM: Final = 128
CALIBRATION_FILE: Final = "face_calibration.json"
VERDICTS: Final = ("match", "gray", "no_match")


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A face rectangle in pixel coordinates of the input image (right/bottom exclusive)."""

    top: int
    right: int
    bottom: int
    left: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)


@dataclass(frozen=True, slots=True)
class Face:
    """A detected face and its raw dlib embedding, shape ``(128,)``."""

    box: FaceBox
    encoding: Embedding


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Score thresholds of one use: ``score >= match`` is a match, ``score < no_match``
    is no match, anything between is gray. ``space`` names the score they apply to."""

    match: float
    no_match: float
    space: str


@dataclass(frozen=True, slots=True)
class FaceMatch:
    """Result of comparing two embeddings.

    :ivar distance: raw dlib euclidean distance (evidence; 0.6 is dlib's usual cut).
    :ivar score: calibrated similarity 0..1, higher = more likely the same person.
    :ivar verdict: ``"match"``, ``"gray"`` or ``"no_match"``.
    :ivar thresholds: the thresholds the verdict came from.
    """

    distance: float
    score: float
    verdict: str
    thresholds: Thresholds


@cache
def _fr() -> Any:
    """The ``face_recognition`` module, imported (and its models loaded) on first use."""
    import face_recognition
    from PIL import ImageFile

    # face_recognition sets this PIL global at import, which would make every later
    # decode in the process accept truncated uploads; vision.io refuses to run so.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    return face_recognition


def _check_image(image: Image) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a BGR image of shape (H, W, 3), got {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image too small for face detection: {image.shape[1]}x{image.shape[0]}")


def _rgb(image: Image) -> Image:
    # dlib wants contiguous RGB; cvtColor always returns a fresh contiguous array.
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def _shrink(image: Image, size: tuple[int, int]) -> Image:
    """Resize down to ``size`` (w, h). Large factors first take every k-th pixel, keeping
    at least a 2x area average after it: INTER_AREA over a whole 12 MP frame costs ~50 ms
    of CPU, this ~20 ms, and HOG and the 150 px chip cannot see the difference."""
    h, w = image.shape[:2]
    k = int(min(w / size[0], h / size[1]) // 2)
    if k >= 2:
        image = image[::k, ::k]
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def detect_faces(image: Image) -> tuple[FaceBox, ...]:
    """Find faces with dlib's HOG detector; boxes in input coordinates, largest first."""
    _check_image(image)
    face_recognition = _fr()
    h, w = image.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = image
    if scale < 1.0:
        small = _shrink(image, (max(1, round(w * scale)), max(1, round(h * scale))))
    rgb = _rgb(small)
    locs = face_recognition.face_locations(rgb, number_of_times_to_upsample=0, model="hog")
    if not locs:
        # Upsampling doubles the image (4x the cost): only worth it for small faces.
        locs = face_recognition.face_locations(rgb, number_of_times_to_upsample=1, model="hog")
    boxes = []
    for top, right, bottom, left in locs:
        box = FaceBox(
            top=max(0, min(h, round(top / scale))),
            right=max(0, min(w, round(right / scale))),
            bottom=max(0, min(h, round(bottom / scale))),
            left=max(0, min(w, round(left / scale))),
        )
        if box.area > 0:
            boxes.append(box)
    boxes.sort(key=lambda b: (-b.area, b.top, b.left))
    return tuple(boxes)


def encode_face(image: Image, box: FaceBox) -> Embedding:
    """The raw 128-d dlib embedding of the face in ``box`` (input coordinates)."""
    _check_image(image)
    face_recognition = _fr()
    h, w = image.shape[:2]
    if box.width <= 0 or box.height <= 0:
        raise ValueError(f"empty face box: {box}")
    mx, my = round(box.width * CROP_MARGIN), round(box.height * CROP_MARGIN)
    x0, y0 = max(0, box.left - mx), max(0, box.top - my)
    x1, y1 = min(w, box.right + mx), min(h, box.bottom + my)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"face box outside the image: {box}")
    crop = image[y0:y1, x0:x1]
    scale = min(1.0, ENCODE_MAX_FACE / max(box.width, box.height))
    if scale < 1.0:
        crop = _shrink(crop, (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))))
    loc = (
        round((box.top - y0) * scale),
        round((box.right - x0) * scale),
        round((box.bottom - y0) * scale),
        round((box.left - x0) * scale),
    )
    enc = face_recognition.face_encodings(_rgb(crop), known_face_locations=[loc], num_jitters=1)
    return np.asarray(enc[0], dtype=np.float64)


def find_faces(image: Image, *, max_faces: int | None = None) -> tuple[Face, ...]:
    """Detect and encode faces, largest first; ``max_faces`` bounds the encoding cost."""
    boxes = detect_faces(image)
    if max_faces is not None:
        boxes = boxes[: max(0, max_faces)]
    return tuple(Face(box=b, encoding=encode_face(image, b)) for b in boxes)


def largest_face(image: Image) -> Face | None:
    """The largest face of the image, encoded, or ``None`` when there is none."""
    faces = find_faces(image, max_faces=1)
    return faces[0] if faces else None


# --- comparison ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Calibration:
    """What ``face_calibration.json`` holds, as arrays (see services/faces/calibrate.py)."""

    method: str
    mean: Embedding  # subtracted before projection, (128,)
    projection: npt.NDArray[np.float64]  # (128, k); identity for "raw"
    metric: str  # "euclidean" or "cosine" in the projected space
    logistic: tuple[float, float]  # score = sigmoid(a + b * d)
    uses: dict[str, Thresholds]
    info: dict[str, Any]
    # Adaptive s-norm: projected impostor cohort (n, k) and how many of each face's
    # closest cohort members give its mean/std; None = plain distance.
    cohort: npt.NDArray[np.float64] | None = None
    cohort_top: int = 0


def _parse_calibration(data: dict[str, Any]) -> Calibration:
    mean = np.asarray(data["mean"], dtype=np.float64)
    proj = np.asarray(data["projection"], dtype=np.float64)
    if mean.shape != (EMBEDDING_DIM,) or proj.ndim != 2 or proj.shape[0] != EMBEDDING_DIM:
        raise ValueError("face calibration: bad mean/projection shape")
    a, b = (float(v) for v in data["logistic"])
    uses = {
        name: Thresholds(match=float(t["match"]), no_match=float(t["no_match"]), space="score")
        for name, t in data["uses"].items()
    }
    if "default" not in uses:
        raise ValueError("face calibration: no 'default' use")
    cohort = None
    if data.get("cohort") is not None:
        cohort = np.asarray(data["cohort"], dtype=np.float64)
        if cohort.ndim != 2 or cohort.shape[1] != proj.shape[1]:
            raise ValueError("face calibration: bad cohort shape")
    return Calibration(
        method=str(data["method"]),
        mean=mean,
        projection=proj,
        metric=str(data["metric"]),
        logistic=(a, b),
        uses=uses,
        info=dict(data.get("info", {})),
        cohort=cohort,
        cohort_top=int(data.get("cohort_top", 0)),
    )


@cache
def calibration() -> Calibration:
    """The shipped calibration, loaded once per process."""
    text = resources.files("vision").joinpath(CALIBRATION_FILE).read_text(encoding="utf-8")
    return _parse_calibration(json.loads(text))


def _check_embedding(e: Embedding) -> Embedding:
    arr = np.asarray(e, dtype=np.float64)
    if arr.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"expected a finite ({EMBEDDING_DIM},) embedding, got shape {arr.shape}")
    return arr


def _project(cal: Calibration, e: Embedding) -> Embedding:
    p: Embedding = (e - cal.mean) @ cal.projection
    if cal.metric == "cosine":
        p = p / max(float(np.linalg.norm(p)), 1e-12)
    return p


def _dist(cal: Calibration, pa: Embedding, pb: npt.NDArray[np.float64]) -> Any:
    """Distance of projected ``pa`` to ``pb`` (one vector or rows)."""
    if cal.metric == "cosine":
        return 1.0 - pb @ pa
    return np.sqrt(((pb - pa) ** 2).sum(axis=-1))


def _cohort_stats(cal: Calibration, p: Embedding) -> tuple[float, float]:
    """Mean and std of the face's distances to its ``cohort_top`` closest cohort faces:
    how crowded its neighbourhood is (East Asian faces sit in a crowded one for dlib)."""
    assert cal.cohort is not None
    d = np.asarray(_dist(cal, p, cal.cohort), dtype=np.float64)
    top = cal.cohort_top
    if 0 < top < len(d):
        d = np.partition(d, top - 1)[:top]
    return float(d.mean()), max(float(d.std()), 1e-6)


def calibrated_distance(cal: Calibration, a: Embedding, b: Embedding) -> float:
    """What the logistic map takes: the distance in the projected space, normalised
    symmetrically against each face's cohort statistics when there is a cohort."""
    pa, pb = _project(cal, a), _project(cal, b)
    d = float(_dist(cal, pa, pb))
    if cal.cohort is None:
        return d
    (ma, sa), (mb, sb) = _cohort_stats(cal, pa), _cohort_stats(cal, pb)
    return 0.5 * ((d - ma) / sa + (d - mb) / sb)


def score_of(cal: Calibration, d: float) -> float:
    a, b = cal.logistic
    z = a + b * d
    # Symmetric, overflow-free sigmoid.
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def verdict_of(score: float, t: Thresholds) -> str:
    if score >= t.match:
        return "match"
    if score < t.no_match:
        return "no_match"
    return "gray"


def compare(a: Embedding, b: Embedding, *, use: str = "default") -> FaceMatch:
    """Compare two raw embeddings with the thresholds of ``use`` (ValueError if unknown)."""
    cal = calibration()
    if use not in cal.uses:
        raise ValueError(f"unknown face-match use {use!r}; known: {sorted(cal.uses)}")
    ea, eb = _check_embedding(a), _check_embedding(b)
    t = cal.uses[use]
    distance = float(np.linalg.norm(ea - eb))
    score = score_of(cal, calibrated_distance(cal, ea, eb))
    return FaceMatch(distance=distance, score=score, verdict=verdict_of(score, t), thresholds=t)
