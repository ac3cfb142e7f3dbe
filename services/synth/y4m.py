"""A video as YUV4MPEG2 (``.y4m``), the format of Chromium's fake camera.

Chromium started with ``--use-fake-device-for-media-stream
--use-file-for-fake-video-capture=clip.y4m`` hands ``getUserMedia`` the file's frames,
looped, at the file's frame rate. The browser tests of the activation page
(``tests/browser``) feed it real clips this way.

The clip is read with OpenCV, optionally cut to ``[start_s, end_s)`` and cropped (a
selfie camera frames one face; footage may show bystanders), re-timed to a fixed frame
rate (nearest source frame by time), scaled to fit a camera-like frame
(640x480, or 480x640 for a portrait clip) keeping its aspect, padded black where the
aspect differs, and written as 4:2:0 planes (``C420jpeg``, I420 order).

``python -m services.synth.y4m SRC DST [--fps 25] [--start 0] [--end 4.5]
[--crop LEFT TOP WIDTH HEIGHT]`` (the crop in fractions of the frame)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

LANDSCAPE = (640, 480)
PORTRAIT = (480, 640)


@dataclass(frozen=True)
class Y4mClip:
    path: Path
    width: int
    height: int
    fps: float
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def _read(src: Path) -> tuple[list[NDArray[np.uint8]], float]:
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {src}")
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        frames: list[NDArray[np.uint8]] = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(np.asarray(frame, dtype=np.uint8))
    finally:
        cap.release()
    if not frames:
        raise ValueError(f"no frames in {src}")
    return frames, fps


Crop = tuple[float, float, float, float]


def _crop(frame: NDArray[np.uint8], crop: Crop | None) -> NDArray[np.uint8]:
    if crop is None:
        return frame
    left, top, width, height = crop
    eps = 1e-9
    if not (0 <= left < 1 and 0 <= top < 1 and 0 < width <= 1 - left + eps) or not (
        0 < height <= 1 - top + eps
    ):
        raise ValueError(f"crop {crop}: fractions of the frame, inside it")
    h, w = frame.shape[:2]
    y0, x0 = round(top * h), round(left * w)
    return frame[y0 : y0 + max(2, round(height * h)), x0 : x0 + max(2, round(width * w))]


def _fit(frame: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    width, height = size
    h, w = frame.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(2, round(w * scale)), max(2, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    small = cv2.resize(frame, (nw, nh), interpolation=interp)
    out = np.zeros((height, width, 3), dtype=np.uint8)
    y, x = (height - nh) // 2, (width - nw) // 2
    out[y : y + nh, x : x + nw] = small
    return out


def camera_frames(
    src: Path, *, crop: Crop | None = None, size: tuple[int, int] | None = None
) -> tuple[list[NDArray[np.uint8]], float]:
    """The source's frames as the fake camera shows them (cropped, fitted into ``size``,
    BGR), and the source's frame rate."""
    frames, fps = _read(src)
    if size is None:
        h, w = _crop(frames[0], crop).shape[:2]
        size = PORTRAIT if h > w else LANDSCAPE
    if size[0] % 2 or size[1] % 2:
        raise ValueError("Y4M 4:2:0 needs an even width and height")
    return [_fit(_crop(f, crop), size) for f in frames], fps


def write_y4m(
    src: Path,
    dst: Path,
    *,
    fps: float | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    size: tuple[int, int] | None = None,
    crop: Crop | None = None,
) -> Y4mClip:
    """Write ``src`` (any video OpenCV reads) to ``dst`` as Y4M; ``size`` is
    ``(width, height)``, both even (default: 640x480, 480x640 for a portrait clip);
    ``crop`` is ``(left, top, width, height)`` in fractions of the source frame."""
    frames, src_fps = camera_frames(src, crop=crop, size=size)
    height, width = frames[0].shape[:2]
    out_fps = float(fps or src_fps)
    duration = len(frames) / src_fps
    end = min(end_s if end_s is not None else duration, duration)
    count = int((end - start_s) * out_fps + 1e-6)
    if count < 1:
        raise ValueError(f"nothing between {start_s} s and {end} s of {src}")
    rate = Fraction(out_fps).limit_denominator(1001)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    with tmp.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} ".encode())
        f.write(b"Ip A1:1 C420jpeg\n")
        for k in range(count):
            i = min(len(frames) - 1, round((start_s + k / out_fps) * src_fps))
            planes = cv2.cvtColor(frames[i], cv2.COLOR_BGR2YUV_I420)
            f.write(b"FRAME\n")
            f.write(np.ascontiguousarray(planes).tobytes())
    tmp.replace(dst)
    return Y4mClip(path=dst, width=width, height=height, fps=out_fps, frames=count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--fps", type=float, default=None, help="default: the source's")
    parser.add_argument("--start", type=float, default=0.0, help="seconds")
    parser.add_argument("--end", type=float, default=None, help="seconds")
    parser.add_argument(
        "--crop", type=float, nargs=4, default=None, metavar=("LEFT", "TOP", "WIDTH", "HEIGHT")
    )
    args = parser.parse_args(argv)
    crop = tuple(args.crop) if args.crop else None
    clip = write_y4m(
        args.src, args.dst, fps=args.fps, start_s=args.start, end_s=args.end, crop=crop
    )
    parser.exit(
        0, f"{clip.path}: {clip.width}x{clip.height}, {clip.frames} frames at {clip.fps:g} fps\n"
    )


if __name__ == "__main__":
    main()
