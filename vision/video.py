"""Decode uploaded selfie videos into sampled frames, defensively, and fingerprint them.

The activation check (R7) gets a short clip from a browser (``MediaRecorder``: WebM with
VP8/VP9, often without a duration in its header, sometimes with a variable frame rate)
or a phone (MP4/MOV with H.264 or HEVC). :func:`decode_video` treats the bytes as
hostile, like :mod:`vision.io` does images:

* the container is sniffed from magic bytes (Matroska/WebM, ISO-BMFF MP4/MOV, AVI);
  anything else never reaches FFmpeg;
* the size is checked before anything is written or parsed (``video.too_large``);
* frames are *counted by reading*, never taken from the header: a MediaRecorder WebM has
  no duration and its frame count is unknown or wrong. Timestamps come from the stream
  (``CAP_PROP_POS_MSEC``), so variable frame rates are sampled on real time;
* decoding stops as soon as a frame lies beyond ``max_seconds`` (``video.too_long``), so a
  long upload costs no more than a legal one;
* frames are sampled at about ``sample_fps`` (only sampled frames are colour-converted:
  ``grab()`` the rest) and shrunk to ``max_side``; the rotation a phone stores in its
  MP4 metadata is applied by FFmpeg.

Every refusal is a :class:`VideoDecodeError` (a :class:`~vision.errors.VisionError`):

=====================  ============================================================
``video.too_large``    more than ``max_bytes`` bytes, or frames over 4096 px a side
``video.too_long``     a frame later than ``max_seconds`` (plus :data:`LENGTH_SLACK_S`)
``video.too_short``    under :data:`MIN_SECONDS` of frames
``video.unreadable``   empty, not a supported container, or no frame decodes
=====================  ============================================================

:func:`fingerprint` makes a perceptual hash of a decoded clip so that the service can
tell a re-submitted recording (re-encoded, trimmed, re-scaled) from a new one with
:func:`fingerprint_distance`; see there for what "close" means.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from vision.errors import VisionError

Image = npt.NDArray[np.uint8]

DEFAULT_MAX_BYTES: Final = 15 * 1024 * 1024
DEFAULT_MAX_SECONDS: Final = 15.0
DEFAULT_SAMPLE_FPS: Final = 10.0
DEFAULT_MAX_SIDE: Final = 640
# Shorter than this cannot hold one challenge action, let alone two.
MIN_SECONDS: Final = 1.0
# A 15 s MediaRecorder clip may end a few frames after 15.0 s (the recorder is stopped by
# a timer in the page, and the first timestamp is not always 0).
LENGTH_SLACK_S: Final = 0.5
# No phone records more than 4K; a bigger frame is a decompression bomb, not a selfie.
MAX_FRAME_SIDE: Final = 4096
# Frame rate assumed when the stream's timestamps are unusable and the header has none.
FALLBACK_FPS: Final = 30.0
# A container may claim anything; more frames than this per second of the limit are not
# a camera recording (the read loop also stops on timestamps).
MAX_SOURCE_FPS: Final = 240.0

# Fingerprint: one 256-bit difference hash (16x16 grid) every FINGERPRINT_STEP_S seconds.
FINGERPRINT_GRID: Final = 16
FINGERPRINT_STEP_S: Final = 0.1
# Frames compared at the best alignment must overlap at least this long (or the whole of
# the shorter clip): two clips that share a moment are not "the same recording".
FINGERPRINT_MIN_OVERLAP_S: Final = 2.0
# fingerprint_distance() at or below this means "the same recording" (bits of 256).
# Measured (tests/vision/test_video.py, shared clips): copies re-encoded (VP8, MPEG-4,
# MJPEG), halved and trimmed score 0-4 (still selfie), 0-10 (head-turn interview) and
# up to 24 (stage clip: fast gestures and camera cuts, so a frame's neighbour differs);
# different clips 110-135. Two disjoint stretches of one still selfie (same person,
# place and light) score 7-13: the hash cannot tell those apart from a copy, so a
# match is a reason to look, not proof.
FINGERPRINT_SAME_MAX: Final = 16
_FINGERPRINT_VERSION: Final = "v1"

_CODEC_NAMES: Final = {
    "avc1": "h264",
    "h264": "h264",
    "x264": "h264",
    "hev1": "hevc",
    "hvc1": "hevc",
    "hevc": "hevc",
    "h265": "hevc",
    "vp80": "vp8",
    "vp8": "vp8",
    "vp90": "vp9",
    "vp9": "vp9",
    "av01": "av1",
    "fmp4": "mpeg4",
    "mp4v": "mpeg4",
    "xvid": "mpeg4",
    "divx": "mpeg4",
    "mjpg": "mjpeg",
}


class VideoDecodeError(VisionError):
    """Uploaded bytes are not an acceptable video (``video.*`` codes)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One sampled frame.

    :ivar t: seconds since the clip's first frame (stream timestamps, not frame index).
    :ivar image: ``uint8`` BGR, ``(H, W, 3)``, C-contiguous and read-only.
    """

    t: float
    image: Image


@dataclass(frozen=True, slots=True)
class Video:
    """A decoded clip: sampled frames in time order and what the stream said.

    :ivar frames: the sampled frames (about ``sample_fps`` per second).
    :ivar fps: the source frame rate, measured from the timestamps (frames read minus one
        over the time they span).
    :ivar duration_s: from the first frame to the end of the last one.
    :ivar width: width of the sampled frames (after rotation and downscaling).
    :ivar height: height of the sampled frames.
    :ivar codec: ``"h264"``, ``"vp8"``, ``"vp9"``, ``"mpeg4"``, ... (FourCC, lower case,
        when the name is not known).
    """

    frames: tuple[Frame, ...]
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str


def sniff_container(data: bytes) -> str | None:
    """``"matroska"`` (WebM, MKV), ``"mp4"`` (MP4, MOV, 3GP) or ``"avi"``, else ``None``."""
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if len(data) >= 12 and data[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    return None


_SUFFIX: Final = {"matroska": ".webm", "mp4": ".mp4", "avi": ".avi"}


def _codec_name(fourcc: float) -> str:
    code = int(fourcc)
    if code <= 0:
        return "unknown"
    raw = code.to_bytes(4, "little").decode("latin-1").strip("\x00 ").lower()
    return _CODEC_NAMES.get(raw, raw or "unknown")


def _shrink(image: Image, max_side: int) -> Image:
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # Bilinear is 6x cheaper than area averaging and alias-free enough down to 1/2.
        interp = cv2.INTER_LINEAR if scale >= 0.5 else cv2.INTER_AREA
        image = np.asarray(cv2.resize(image, size, interpolation=interp), np.uint8)
    out = np.ascontiguousarray(image)
    out.flags.writeable = False
    return out


def decode_video(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    sample_fps: float = DEFAULT_SAMPLE_FPS,
    max_side: int = DEFAULT_MAX_SIDE,
) -> Video:
    """Decode a WebM / MP4 / MOV / AVI upload and sample its frames.

    :param data: the raw file bytes.
    :param max_bytes: refuse larger inputs (``video.too_large``), before any parsing.
    :param max_seconds: refuse clips with a frame later than this (``video.too_long``,
        with :data:`LENGTH_SLACK_S` of slack); decoding stops there.
    :param sample_fps: keep about this many frames per second of stream time (the first
        frame at or after each multiple of ``1 / sample_fps``).
    :param max_side: shrink kept frames so that their longer side is at most this.
    :raises VideoDecodeError: ``video.too_large``, ``video.too_long``, ``video.too_short``
        or ``video.unreadable``.
    """
    if sample_fps <= 0 or max_side < 16 or max_seconds <= 0:
        raise ValueError("sample_fps and max_seconds must be positive, max_side at least 16")
    if not data:
        raise VideoDecodeError("video.unreadable", "no video data")
    if len(data) > max_bytes:
        raise VideoDecodeError(
            "video.too_large", f"{len(data)} bytes exceeds the limit of {max_bytes}"
        )
    container = sniff_container(data)
    if container is None:
        raise VideoDecodeError("video.unreadable", "not a WebM, MP4/MOV or AVI file")
    fd, path = tempfile.mkstemp(prefix="simgate-video-", suffix=_SUFFIX[container])
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return _read(path, max_seconds=max_seconds, sample_fps=sample_fps, max_side=max_side)
    finally:
        os.unlink(path)


def _read(path: str, *, max_seconds: float, sample_fps: float, max_side: int) -> Video:
    # One decoding thread: FFmpeg's frame threads cost ~40% more CPU in all, and the
    # workers are CPU-bound processes running side by side.
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    try:
        if not cap.isOpened():
            raise VideoDecodeError("video.unreadable", "no decodable video stream")
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        w0 = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h0 = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if max(w0, h0) > MAX_FRAME_SIDE:
            raise VideoDecodeError(
                "video.too_large", f"{w0}x{h0} frames exceed {MAX_FRAME_SIDE} px a side"
            )
        header_fps = float(cap.get(cv2.CAP_PROP_FPS))
        if not (math.isfinite(header_fps) and 1.0 <= header_fps <= MAX_SOURCE_FPS):
            header_fps = FALLBACK_FPS
        codec = _codec_name(cap.get(cv2.CAP_PROP_FOURCC))
        step = 1.0 / sample_fps
        max_frames = math.ceil((max_seconds + LENGTH_SLACK_S) * MAX_SOURCE_FPS)
        frames: list[Frame] = []
        t0: float | None = None
        last_t = -math.inf
        n_read = 0
        next_sample = 0.0
        while cap.grab():
            n_read += 1
            raw = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            if t0 is None:
                t0 = raw if math.isfinite(raw) else 0.0
            t = raw - t0
            if not math.isfinite(t) or t <= last_t:
                # Missing or repeated timestamps: assume the header's (or a usual) rate.
                t = (last_t + 1.0 / header_fps) if n_read > 1 else 0.0
            last_t = t
            if t > max_seconds + LENGTH_SLACK_S or n_read > max_frames:
                raise VideoDecodeError(
                    "video.too_long", f"longer than the limit of {max_seconds:g} s"
                )
            if t + 1e-6 < next_sample:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None or image.ndim != 3 or image.shape[2] != 3:
                continue
            frames.append(Frame(t=t, image=_shrink(np.asarray(image, np.uint8), max_side)))
            next_sample = (math.floor(t / step + 1e-6) + 1) * step
    finally:
        cap.release()
    if not frames:
        raise VideoDecodeError("video.unreadable", "no frame could be decoded")
    span = last_t
    fps = (n_read - 1) / span if n_read > 1 and span > 0 else header_fps
    duration = span + 1.0 / fps
    if duration < MIN_SECONDS:
        raise VideoDecodeError(
            "video.too_short", f"{duration:.2f} s is shorter than {MIN_SECONDS:g} s"
        )
    height, width = frames[0].image.shape[:2]
    return Video(
        frames=tuple(frames),
        fps=fps,
        duration_s=duration,
        width=int(width),
        height=int(height),
        codec=codec,
    )


# --- fingerprint ---------------------------------------------------------------------------


def _dhash(image: Image) -> bytes:
    """256-bit difference hash: is each cell of a 16x16 grid brighter than its right
    neighbour. Finer than the usual 8x8, so that two recordings of a still selfie in
    the same place (the same picture, shifted by a few pixels) still differ."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    g = FINGERPRINT_GRID
    small = cv2.resize(gray, (g + 1, g), interpolation=cv2.INTER_AREA).astype(np.int16)
    return np.packbits(small[:, 1:] > small[:, :-1]).tobytes()


def fingerprint(video: Video) -> str:
    """A perceptual fingerprint of the clip: ``"v1:"`` and, for every
    :data:`FINGERPRINT_STEP_S` seconds of stream time, the 256-bit difference hash (64
    hex digits) of the sampled frame nearest to it.

    It survives re-encoding (another codec or bitrate), re-scaling and trimming: the
    hashes follow stream time, and :func:`fingerprint_distance` slides one sequence
    along the other. About 640 characters per second of video.
    """
    frames = video.frames
    if not frames:
        return f"{_FINGERPRINT_VERSION}:"
    times = np.array([f.t for f in frames])
    n = int(frames[-1].t / FINGERPRINT_STEP_S + 0.5) + 1
    cache: dict[int, str] = {}
    parts = []
    for k in range(n):
        i = int(np.argmin(np.abs(times - k * FINGERPRINT_STEP_S)))
        if i not in cache:
            cache[i] = _dhash(frames[i].image).hex()
        parts.append(cache[i])
    return f"{_FINGERPRINT_VERSION}:" + "".join(parts)


_HASH_HEX: Final = FINGERPRINT_GRID * FINGERPRINT_GRID // 4


def _parse(fp: str) -> npt.NDArray[np.uint8]:
    """The fingerprint's hashes as bits, one row per time step."""
    version, _, body = fp.partition(":")
    if version != _FINGERPRINT_VERSION or len(body) % _HASH_HEX:
        raise ValueError(f"not a {_FINGERPRINT_VERSION} video fingerprint")
    try:
        raw = bytes.fromhex(body)
    except ValueError as exc:
        raise ValueError(f"not a {_FINGERPRINT_VERSION} video fingerprint") from exc
    return np.unpackbits(np.frombuffer(raw, np.uint8)).reshape(-1, _HASH_HEX * 4)


def fingerprint_distance(a: str, b: str) -> int:
    """How different two fingerprints are: the mean Hamming distance between time-aligned
    frame hashes (bits of 256) at the time offset where the clips agree best.

    The overlap must last :data:`FINGERPRINT_MIN_OVERLAP_S` (or the whole shorter clip).
    0 = the same frames; different clips measure 110-135; up to
    :data:`FINGERPRINT_SAME_MAX` = the same recording. Symmetric. An empty fingerprint is
    128 (chance) from anything.

    :raises ValueError: when either string is not a fingerprint of this version.
    """
    ha, hb = _parse(a), _parse(b)
    if not len(ha) or not len(hb):
        return _HASH_HEX * 2
    if len(ha) > len(hb):
        ha, hb = hb, ha
    bits_a, bits_b = ha.astype(np.int32), hb.astype(np.int32)
    # Pairwise Hamming distances of all frame hashes: a matrix product of the bits.
    pair = bits_a @ (1 - bits_b).T + (1 - bits_a) @ bits_b.T
    na, nb = len(ha), len(hb)
    min_overlap = min(na, max(1, round(FINGERPRINT_MIN_OVERLAP_S / FINGERPRINT_STEP_S)))
    best = math.inf
    # Offset o: frame i of a is compared with frame i + o of b.
    for o in range(-(na - min_overlap), nb - min_overlap + 1):
        i0, i1 = max(0, -o), min(na, nb - o)
        if i1 - i0 < min_overlap:
            continue
        rows = np.arange(i0, i1)
        best = min(best, float(pair[rows, rows + o].mean()))
    return round(best)
