"""Decoding uploaded selfie videos and fingerprinting them (vision.video)."""

from __future__ import annotations

import itertools
import math
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from tests.conftest import FIXTURES, SHARED_DATA
from vision.errors import VisionError
from vision.video import (
    FINGERPRINT_SAME_MAX,
    Video,
    VideoDecodeError,
    decode_video,
    fingerprint,
    fingerprint_distance,
    sniff_container,
)

Image = npt.NDArray[np.uint8]
VIDEOS = SHARED_DATA / "faces" / "videos"


# --- helpers -------------------------------------------------------------------------------


def encode_clip(
    frames: list[Image], fps: float, tmp: Path, fourcc: str = "VP80", suffix: str = ".webm"
) -> bytes:
    """Encode BGR frames with OpenCV (VP80 .webm, mp4v .mp4, MJPG .avi work here)."""
    path = tmp / f"clip{suffix}"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), fourcc
    for frame in frames:
        writer.write(np.ascontiguousarray(frame))
    writer.release()
    data = path.read_bytes()
    path.unlink()
    return data


def scene(
    seconds: float, fps: float, *, seed: int = 0, size: tuple[int, int] = (320, 240)
) -> list[Image]:
    """A textured background with moving shapes: different seeds, different scenes."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = cv2.resize(
        rng.integers(40, 220, (h // 16, w // 16, 3), dtype=np.uint8),
        (w + 64, h + 64),
        interpolation=cv2.INTER_CUBIC,
    )
    shapes = [
        (rng.uniform(0, w), rng.uniform(0, h), rng.uniform(-60, 60), rng.uniform(-40, 40))
        for _ in range(4)
    ]
    colours = [tuple(int(c) for c in rng.integers(0, 255, 3)) for _ in shapes]
    frames = []
    for k in range(round(seconds * fps)):
        t = k / fps
        dx = round(20 * math.sin(t))
        frame = np.ascontiguousarray(base[32 : 32 + h, 32 + dx : 32 + dx + w], np.uint8)
        for (x, y, vx, vy), colour in zip(shapes, colours, strict=True):
            cx, cy = int((x + vx * t) % w), int((y + vy * t) % h)
            cv2.circle(frame, (cx, cy), h // 8, colour, -1)
        frames.append(frame)
    return frames


def strip_matroska_duration(data: bytes) -> bytes:
    """Overwrite the Segment Info Duration element with a Void element of the same size,
    as in a WebM from a browser's MediaRecorder (which writes no duration)."""
    i = data.find(b"\x44\x89")  # Duration: ID, then a 1-byte size (0x84 or 0x88), float
    assert i > 0
    size = data[i + 2] & 0x7F
    total = 3 + size
    void = b"\xec" + bytes([0x80 | (total - 2)]) + b"\x00" * (total - 2)
    return data[:i] + void + data[i + total :]


@cache
def _webm_2s() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return encode_clip(scene(2.0, 15.0), 15.0, Path(tmp))


# --- decoding ------------------------------------------------------------------------------


def test_webm_vp8_is_sampled_at_10_fps() -> None:
    video = decode_video(_webm_2s())
    assert isinstance(video, Video)
    assert video.codec == "vp8"
    assert (video.width, video.height) == (320, 240)
    assert video.fps == pytest.approx(15.0, abs=0.2)
    assert video.duration_s == pytest.approx(2.0, abs=0.1)
    assert 19 <= len(video.frames) <= 21
    times = [f.t for f in video.frames]
    assert times[0] == 0.0
    assert all(0.05 < b - a < 0.15 for a, b in itertools.pairwise(times))
    image = video.frames[3].image
    assert image.dtype == np.uint8
    assert image.shape == (240, 320, 3)
    assert image.flags.c_contiguous
    assert not image.flags.writeable


def test_mp4_and_avi_containers(tmp_path: Path) -> None:
    frames = scene(1.5, 12.0)
    mp4 = decode_video(encode_clip(frames, 12.0, tmp_path, "mp4v", ".mp4"))
    assert mp4.codec == "mpeg4"
    assert mp4.duration_s == pytest.approx(1.5, abs=0.1)
    avi = decode_video(encode_clip(frames, 12.0, tmp_path, "MJPG", ".avi"))
    assert avi.codec == "mjpeg"
    assert len(avi.frames) == len(mp4.frames)


def test_large_frames_are_downscaled_and_sampling_follows_sample_fps(tmp_path: Path) -> None:
    data = encode_clip(scene(2.0, 10.0, size=(1280, 720)), 10.0, tmp_path)
    video = decode_video(data, sample_fps=5.0, max_side=640)
    assert (video.width, video.height) == (640, 360)
    assert video.frames[0].image.shape == (360, 640, 3)
    assert 9 <= len(video.frames) <= 11


def test_webm_without_duration_is_counted_by_reading() -> None:
    data = strip_matroska_duration(_webm_2s())
    video = decode_video(data)
    assert video.duration_s == pytest.approx(2.0, abs=0.1)
    assert 19 <= len(video.frames) <= 21


def test_container_sniffing() -> None:
    assert sniff_container(_webm_2s()) == "matroska"
    assert sniff_container(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8) == "mp4"
    assert sniff_container(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    assert sniff_container(b"\xff\xd8\xff\xe0" + b"\x00" * 16) is None
    assert sniff_container(b"") is None


@pytest.mark.parametrize(
    ("data", "kwargs", "code"),
    [
        (b"", {}, "video.unreadable"),
        (b"not a video at all, just text" * 10, {}, "video.unreadable"),
        ((FIXTURES / "selfies" / "selfie000_no_card.jpg").read_bytes(), {}, "video.unreadable"),
        (b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 8, {}, "video.unreadable"),
        (None, {"max_bytes": 1000}, "video.too_large"),
        (None, {"max_seconds": 1.0}, "video.too_long"),
    ],
)
def test_refusals(data: bytes | None, kwargs: dict[str, float], code: str) -> None:
    with pytest.raises(VideoDecodeError) as info:
        decode_video(_webm_2s() if data is None else data, **kwargs)  # type: ignore[arg-type]
    assert info.value.code == code
    assert isinstance(info.value, VisionError)


def test_truncated_and_short_clips(tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError) as info:
        decode_video(_webm_2s()[:300])
    assert info.value.code == "video.unreadable"
    short = encode_clip(scene(0.6, 10.0), 10.0, tmp_path)
    with pytest.raises(VideoDecodeError) as info:
        decode_video(short)
    assert info.value.code == "video.too_short"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="sample_fps"):
        decode_video(_webm_2s(), sample_fps=0)


# --- fingerprint ---------------------------------------------------------------------------


def test_fingerprint_survives_reencoding_rescaling_and_trimming(tmp_path: Path) -> None:
    frames = scene(4.0, 15.0, seed=1)
    original = fingerprint(decode_video(encode_clip(frames, 15.0, tmp_path)))
    assert original.startswith("v1:")
    assert len(original) == 3 + 64 * 40  # a hash every 0.1 s of the 3.93 s clip
    half = [
        np.asarray(cv2.resize(f, (160, 120), interpolation=cv2.INTER_AREA), np.uint8)
        for f in frames
    ]
    copies = {
        "mp4v": encode_clip(frames, 15.0, tmp_path, "mp4v", ".mp4"),
        "mjpeg": encode_clip(frames, 15.0, tmp_path, "MJPG", ".avi"),
        "half size": encode_clip(half, 15.0, tmp_path),
        "trimmed": encode_clip(frames[11:-8], 15.0, tmp_path),
    }
    for name, data in copies.items():
        d = fingerprint_distance(original, fingerprint(decode_video(data)))
        assert d <= FINGERPRINT_SAME_MAX, (name, d)
    other = fingerprint(decode_video(encode_clip(scene(4.0, 15.0, seed=2), 15.0, tmp_path)))
    d_other = fingerprint_distance(original, other)
    assert d_other > 4 * FINGERPRINT_SAME_MAX
    assert fingerprint_distance(other, original) == d_other
    assert fingerprint_distance(original, original) == 0


def test_fingerprint_format_errors() -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        fingerprint_distance("v1:abc", "v1:")
    with pytest.raises(ValueError, match="fingerprint"):
        fingerprint_distance("v0:" + "0" * 64, "v1:" + "0" * 64)
    with pytest.raises(ValueError, match="fingerprint"):
        fingerprint_distance("v1:" + "z" * 64, "v1:" + "0" * 64)
    assert fingerprint_distance("v1:", "v1:" + "0" * 64) == 128
    empty = Video(frames=(), fps=10.0, duration_s=0.0, width=0, height=0, codec="vp8")
    assert fingerprint(empty) == "v1:"


# --- the shared genuine clips ----------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("name", "codec", "size", "fps", "duration", "frames"),
    [
        ("blink_frontal_selfie.mp4", "h264", (360, 640), 23.86, 14.0, 140),
        ("orlando_bloom_head_turn.avi", "mpeg4", (320, 240), 25.0, 5.56, 56),
        ("hamilton_clip_lin-manuel-miranda.mp4", "h264", (640, 360), 29.97, 9.18, 92),
    ],
)
def test_shared_clips_decode(
    shared_data: Path,
    name: str,
    codec: str,
    size: tuple[int, int],
    fps: float,
    duration: float,
    frames: int,
) -> None:
    video = decode_video((VIDEOS / name).read_bytes())
    assert video.codec == codec
    assert (video.width, video.height) == size  # the 480x854 selfie shrinks to 640 high
    assert video.fps == pytest.approx(fps, abs=0.05)
    assert video.duration_s == pytest.approx(duration, abs=0.05)
    assert len(video.frames) == frames


def _read_all(path: Path) -> tuple[list[Image], float]:
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    out = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        out.append(np.asarray(image, np.uint8))
    cap.release()
    return out, fps


@pytest.mark.shared_data
def test_fingerprint_of_the_genuine_clips(shared_data: Path, tmp_path: Path) -> None:
    """Copies of a recording are close, other recordings far. Measured: copies 2-7,
    two disjoint 5 s stretches of the still selfie 13, other clips 110-135."""
    fps_of = {}
    for name in ("blink_frontal_selfie.mp4", "orlando_bloom_head_turn.avi"):
        full, fps = _read_all(VIDEOS / name)
        fps_of[name] = fingerprint(decode_video((VIDEOS / name).read_bytes()))
        # Half size, and (the selfie) MJPEG: encoding stays cheap; the hash ignores scale.
        frames = [
            np.asarray(cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2)), np.uint8) for f in full
        ]
        copy = encode_clip(frames[round(0.7 * fps) :], fps, tmp_path)
        d_copy = fingerprint_distance(fps_of[name], fingerprint(decode_video(copy)))
        assert d_copy <= FINGERPRINT_SAME_MAX, (name, d_copy)
        if name.startswith("blink"):
            a, b = (
                encode_clip(
                    frames[round(t0 * fps) : round((t0 + 5) * fps)], fps, tmp_path, "MJPG", ".avi"
                )
                for t0 in (1.0, 8.3)
            )
            d = fingerprint_distance(fingerprint(decode_video(a)), fingerprint(decode_video(b)))
            # Same person, room and light, eyes closed in part of one: closer than other
            # clips by far, but further than a copy.
            assert 6 < d < 40, d
    apart = fingerprint_distance(*fps_of.values())
    assert apart > 100
