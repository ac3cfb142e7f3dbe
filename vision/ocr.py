"""Thin, typed wrapper around RapidOCR's PP-OCR models (shipped inside the wheel).

The reader never runs RapidOCR's whole default pipeline: it rectifies the card first and
then either recognises known field crops (fast path) or runs one detection pass at a
bounded size (fallback). Both need the detector and recogniser separately, which this
module exposes. Models load lazily, once per process and thread count.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

# Detection side limit: cards are rectified to 1000 px wide; 800 px loses no accuracy
# and halves detection cost compared with RapidOCR's default upscaling (measurements 3b).
DET_LIMIT_SIDE = 800


@dataclass(frozen=True, slots=True)
class TextLine:
    """One recognised line. ``quad`` is ``(4, 2)`` float32 pixel corners TL, TR, BR, BL."""

    text: str
    score: float
    quad: npt.NDArray[np.float32]

    @property
    def x0(self) -> float:
        return float(self.quad[:, 0].min())

    @property
    def x1(self) -> float:
        return float(self.quad[:, 0].max())

    @property
    def y0(self) -> float:
        return float(self.quad[:, 1].min())

    @property
    def y1(self) -> float:
        return float(self.quad[:, 1].max())

    @property
    def cy(self) -> float:
        return float(self.quad[:, 1].mean())


class OcrEngine:
    """Detector + recogniser with explicit thread counts (1 = best throughput)."""

    def __init__(self, threads: int = 1) -> None:
        from rapidocr import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.use_cls": False,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            "Det.limit_type": "max",
            "Det.limit_side_len": DET_LIMIT_SIDE,
            # The recogniser pads every crop to at least this width; the default 320 makes
            # a one-character field cost as much as a full line (36 ms vs 8 ms measured).
            "Rec.rec_img_shape": [3, 48, 48],
            # Batches are padded to their widest crop; field crops differ a lot in width,
            # so one crop per call is cheaper (0.30 s vs 0.45 s for a front, measured).
            "Rec.rec_batch_num": 1,
        }
        self._engine = RapidOCR(params=params)
        self._lock = threading.Lock()
        self.threads = threads

    def recognize(self, crops: list[Image]) -> list[tuple[str, float]]:
        """Recognise single-line BGR crops; returns ``(text, score)`` per crop, in order."""
        if not crops:
            return []
        from rapidocr.ch_ppocr_rec import TextRecInput

        with self._lock:
            rec = self._engine._load_rec_model()  # type: ignore[no-untyped-call]
            out = rec(TextRecInput(img=[np.ascontiguousarray(c) for c in crops]))
        txts = out.txts or ()
        return [(str(t), float(s)) for t, s in zip(txts, out.scores, strict=True)]

    def detect(self, image: Image) -> list[npt.NDArray[np.float32]]:
        """Detect text lines; returns ``(4, 2)`` quads in ``image`` pixels, top-to-bottom."""
        with self._lock:
            det = self._engine._load_det_model()  # type: ignore[no-untyped-call]
            out = det(np.ascontiguousarray(image))
        if out.boxes is None:
            return []
        return [np.asarray(b, dtype=np.float32) for b in out.boxes]

    def read_lines(self, image: Image) -> list[TextLine]:
        """Detect then recognise every line of ``image`` (the slow, layout-free path)."""
        quads = self.detect(image)
        crops = [crop_quad(image, q) for q in quads]
        keep = [i for i, c in enumerate(crops) if c.shape[0] >= 4 and c.shape[1] >= 4]
        results = self.recognize([crops[i] for i in keep])
        return [
            TextLine(text=t, score=s, quad=quads[i])
            for i, (t, s) in zip(keep, results, strict=True)
            if t.strip()
        ]

    def warm_up(self) -> None:
        """Load both models now (first call otherwise pays ~1.8 s)."""
        blank = np.full((48, 160, 3), 255, dtype=np.uint8)
        self.recognize([blank])
        self.detect(np.full((64, 64, 3), 255, dtype=np.uint8))


@cache
def get_engine(threads: int = 1) -> OcrEngine:
    """The process-wide engine for ``threads`` (models are loaded on first use)."""
    return OcrEngine(threads=threads)


def crop_quad(image: Image, quad: npt.NDArray[np.float32]) -> Image:
    """Perspective-crop a text quad (TL, TR, BR, BL) to an upright strip."""
    import cv2

    q = np.asarray(quad, dtype=np.float32)
    width = int(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[3] - q[2])))
    height = int(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2])))
    width, height = max(width, 1), max(height, 1)
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(q, dst)
    out = cv2.warpPerspective(
        image, m, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if height > width * 1.5:  # vertical strip: the recogniser expects horizontal text
        out = np.ascontiguousarray(np.rot90(out))
    return np.asarray(out, dtype=np.uint8)
