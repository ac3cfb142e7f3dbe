"""Head-and-shoulders ID portraits cut from the shared real face photos.

Only photos from ``<shared data>/faces/people`` are used (see its MANIFEST.md for
provenance); the identity data printed next to them is always synthetic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[2]

# MIT-licensed photos from ageitgey/face_recognition (see the shared MANIFEST.md).
# Barack_Obama/4.jpg (320x240) is left out: too small for a printed portrait.
MIT_PHOTOS: tuple[str, ...] = (
    "people/Barack_Obama/1.jpg",
    "people/Barack_Obama/2.jpg",
    "people/Barack_Obama/3.jpg",
    "people/Joe_Biden/1.jpg",
    "people/Joe_Biden/2.jpg",
    "people/Alex_Lacamoire/1.png",
    "people/Alex_Lacamoire/2.jpg",
    "people/Alex_Lacamoire/3.jpg",
    "people/Kit_Harington/1.jpg",
    "people/Kit_Harington/2.jpg",
    "people/Kit_Harington/3.jpg",
    "people/Rose_Leslie/1.jpg",
    "people/Rose_Leslie/2.jpg",
    "people/Lin-Manuel_Miranda/1.png",
)
# LFW deep-funneled 250x250 photos of East Asian public figures (licence: none stated).
EAST_ASIAN_LFW_PHOTOS: tuple[str, ...] = tuple(
    f"people/{person}/{n}.jpg"
    for person in (
        "Junichiro_Koizumi",
        "Hu_Jintao",
        "Roh_Moo-hyun",
        "Yao_Ming",
        "Zhang_Ziyi",
        "Lucy_Liu",
        "Yoriko_Kawaguchi",
    )
    for n in (1, 2, 3)
)
LFW_SIZE = (250, 250)
# Portrait aspect (width / height) follows the card layout: about 0.71.
_DETECT_MAX_SIDE = 640


class FacesNotFoundError(FileNotFoundError):
    """The shared face photos are not where they were expected."""


@dataclass(frozen=True, slots=True)
class PortraitSource:
    """A face photo: its path relative to the shared data folder and whose face it is."""

    relative_path: str  # e.g. "faces/people/Joe_Biden/1.jpg"
    face_identity: str


def shared_data_dir() -> Path:
    """``$SIMGATE_SHARED_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get("SIMGATE_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def default_faces_dir() -> Path:
    return shared_data_dir() / "faces"


def portrait_pool(faces_dir: Path, *, mit_only: bool = False) -> list[PortraitSource]:
    """The photos cards may show, MIT-licensed first, then East Asian LFW ones."""
    if not (faces_dir / "people").is_dir():
        raise FacesNotFoundError(f"{faces_dir / 'people'} not found (set SIMGATE_SHARED_DATA)")
    chosen = MIT_PHOTOS if mit_only else MIT_PHOTOS + EAST_ASIAN_LFW_PHOTOS
    pool = [
        PortraitSource(f"{faces_dir.name}/{rel}", rel.split("/")[1])
        for rel in chosen
        if (faces_dir / rel).is_file()
    ]
    if not pool:
        raise FacesNotFoundError(f"no portrait photos found under {faces_dir}")
    return pool


def load_rgb(path: Path) -> npt.NDArray[np.uint8]:
    """RGB pixels with EXIF orientation applied and any alpha channel dropped."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image)
        return np.asarray(upright.convert("RGB"), dtype=np.uint8)


def _face_box(rgb: npt.NDArray[np.uint8]) -> tuple[float, float, float, float]:
    """(top, right, bottom, left) of the largest face, in pixels of ``rgb``."""
    height, width = rgb.shape[:2]
    if (width, height) == LFW_SIZE:
        # Deep-funneled LFW images are aligned: the face sits at a fixed place.
        return 82.0, 170.0, 178.0, 80.0
    scale = min(1.0, _DETECT_MAX_SIDE / max(height, width))
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    import face_recognition  # imported lazily: dlib is slow to load
    from PIL import ImageFile

    # face_recognition switches PIL to accept truncated files on import; vision.io
    # refuses to decode in that state, so switch it back.
    ImageFile.LOAD_TRUNCATED_IMAGES = False

    boxes: list[tuple[int, int, int, int]] = face_recognition.face_locations(
        np.ascontiguousarray(small), number_of_times_to_upsample=1, model="hog"
    )
    if not boxes:
        # No face found: assume a centred head in the upper half.
        side = min(width, height) * 0.35
        return height * 0.25, width / 2 + side / 2, height * 0.25 + side, width / 2 - side / 2
    top, right, bottom, left = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    return top / scale, right / scale, bottom / scale, left / scale


def _valid_pixels(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """1 where the photo has content; 0 in near-black areas touching its corners."""
    height, width = rgb.shape[:2]
    dark = (rgb.max(axis=2) < 16).astype(np.uint8)
    fill = np.zeros((height + 2, width + 2), np.uint8)
    for x, y in ((0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)):
        if dark[y, x]:
            cv2.floodFill(dark, fill, (x, y), 2)
    return np.asarray(dark != 2, np.float32)


@lru_cache(maxsize=64)
def _id_photo_bytes(path: Path, width: int, height: int) -> bytes:
    """Cached pixels: face detection dominates the cost of a card."""
    rgb = load_rgb(path)
    top, right, bottom, left = _face_box(rgb)
    face_h = bottom - top
    # ID-photo framing: the dlib box (brows to chin) is ~40% of the photo height,
    # with room above for the hair and the shoulders below.
    crop_h = face_h / 0.40
    crop_w = crop_h * width / height
    cx = (left + right) / 2
    y0 = top - 0.62 * face_h
    x0 = cx - crop_w / 2
    # Affine crop: pixels outside the source photo become the white backdrop.
    s = width / crop_w
    matrix = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], dtype=np.float64)
    crop = cv2.warpAffine(
        rgb,
        matrix,
        (width, height),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(255, 255, 255),
    )
    # Soft head-and-shoulders mask; the rest fades to white, as ID portraits are shot
    # on a plain light backdrop (printed white lets the card background show through).
    mask = np.zeros((height, width), np.float32)
    fcx, fcy = (cx - x0) * s, (top + 0.25 * face_h - y0) * s
    fw, fh = (right - left) * s, face_h * s
    cv2.ellipse(
        mask, (round(fcx), round(fcy)), (round(fw * 0.68), round(fh * 0.95)), 0, 0, 360, 1.0, -1
    )
    shoulders_y = fcy + fh * 1.25
    cv2.ellipse(
        mask,
        (round(fcx), round(shoulders_y + fh * 0.9)),
        (round(fw * 1.7), round(fh * 1.0)),
        0,
        0,
        360,
        1.0,
        -1,
    )
    neck = np.array(
        [
            [fcx - fw * 0.4, fcy],
            [fcx + fw * 0.4, fcy],
            [fcx + fw * 0.55, shoulders_y + fh * 0.3],
            [fcx - fw * 0.55, shoulders_y + fh * 0.3],
        ]
    )
    cv2.fillConvexPoly(mask, neck.round().astype(np.int32), 1.0)
    # Only real photo pixels may show: not the padding, not LFW's black warp corners.
    valid = cv2.warpAffine(
        _valid_pixels(rgb),
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    shown = cv2.erode(mask * valid, np.ones((5, 5), np.uint8))
    soft = np.asarray(cv2.GaussianBlur(shown, (0, 0), sigmaX=max(2.0, fw * 0.06)), np.float32)
    mask = soft[..., None]
    # Printed portraits are a little washed out and desaturated.
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None].astype(np.float32)
    toned = (0.7 * crop.astype(np.float32) + 0.3 * gray) * 0.92 + 16
    photo = mask * toned + (1 - mask) * 255.0
    bgr = cv2.cvtColor(np.clip(photo, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    return bgr.tobytes()


def id_photo(path: Path, width: int, height: int) -> npt.NDArray[np.uint8]:
    """A BGR head-and-shoulders ID photo of ``width`` x ``height`` on a white backdrop."""
    pixels = _id_photo_bytes(path, width, height)
    return np.frombuffer(pixels, np.uint8).reshape(height, width, 3).copy()
