"""``simgate bench barcodes``: zxing-cpp against pyzbar on phone-like QR captures.

Each capture is a ~120-byte token (the size of a signed agent badge) as a QR code of
120-220 px, pasted with perspective jitter into a cluttered 1600x1200 frame, blurred and
saved as JPEG 70. Both decoders read the same images in the same run; the table gives
decode rates per blur level and CPU milliseconds per frame (median, p95, one thread).
"""

from __future__ import annotations

import secrets
import statistics
import time
from typing import Any, Literal

import click
import cv2
import numpy as np
import numpy.typing as npt

from vision.barcode import read_codes

BLURS = (0.6, 1.2)


def _scene(rng: np.random.Generator, payload: str, blur: float) -> npt.NDArray[np.uint8]:
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(payload)
    qr.make(fit=True)
    code = np.array(qr.make_image(fill_color="black", back_color="white").convert("L"))
    frame = rng.integers(90, 200, (1200, 1600, 3), dtype=np.uint8)
    frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), 6), dtype=np.uint8)
    for _ in range(25):
        x, y = (int(v) for v in rng.integers(0, 1500, 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(frame, (x, y), (x + int(rng.integers(20, 300)), y + 80), colour, -1)
        cv2.putText(frame, "TOTAL 555-0134", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2)
    size = int(rng.integers(120, 221))
    x0, y0 = int(rng.integers(100, 1300)), int(rng.integers(100, 900))
    src = np.array([[0, 0], [code.shape[1], 0], [code.shape[1], code.shape[0]], [0, code.shape[0]]])
    dst = np.array([[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size]], float)
    dst += rng.uniform(-0.1, 0.1, dst.shape) * size
    m = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    warped = cv2.warpPerspective(cv2.cvtColor(code, cv2.COLOR_GRAY2BGR), m, (1600, 1200))
    mask = cv2.warpPerspective(np.full(code.shape, 255, np.uint8), m, (1600, 1200)) > 0
    frame[mask] = warped[mask]
    frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), blur), dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), dtype=np.uint8)


def run(count: int, seed: int) -> dict[str, Any]:
    cv2.setNumThreads(1)
    rng = np.random.default_rng(seed)
    rows: dict[str, Any] = {}
    for blur in BLURS:
        scenes = []
        for _ in range(count):
            payload = "https://verify.example/agent?t=" + secrets.token_urlsafe(66)[:88]
            scenes.append((payload, _scene(rng, payload, blur)))
        decoders: tuple[Literal["zxing", "pyzbar"], ...] = ("zxing", "pyzbar")
        for decoder in decoders:
            hits, times = 0, []
            for payload, image in scenes:
                t0 = time.process_time()
                codes = read_codes(image, decoder=decoder)
                times.append((time.process_time() - t0) * 1000)
                hits += any(c.text == payload for c in codes)
            rows[f"{decoder}@{blur}"] = {
                "decoded": hits,
                "n": count,
                "median_ms": statistics.median(times),
                "p95_ms": sorted(times)[int(0.95 * (len(times) - 1))],
            }
    click.echo(f"QR codes, {count} frames per blur level (1600x1200, JPEG 70), one thread")
    click.echo(f"{'decoder':<8}{'blur':>6}{'decoded':>10}{'median ms':>11}{'p95 ms':>9}")
    for key, r in rows.items():
        name, blur_s = key.split("@")
        click.echo(
            f"{name:<8}{blur_s:>6}{r['decoded']:>5}/{r['n']:<4}"
            f"{r['median_ms']:>11.1f}{r['p95_ms']:>9.1f}"
        )
    return rows
